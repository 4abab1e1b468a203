"""ComfyUI entry point of the 3DLabs pack: node mappings, WEB_DIRECTORY and the pack's routes.

Importing this module makes no network call and needs no token; without ComfyUI it still imports
(the tests load it exactly as ComfyUI does).
"""

from .nodes import comfy as _comfy
from .nodes.api.config import set_default_user_dir as _set_default_user_dir
from .nodes.generate import ThreeDLabsImageGenerate
from .nodes.projects import ThreeDLabsLoadProject, ThreeDLabsProjects
from .nodes.recent_jobs import ThreeDLabsRecentJobs
from .nodes.scenes import ThreeDLabsScenePlan, ThreeDLabsSceneSelect
from .nodes.story import ThreeDLabsStory
from .nodes.storyboard.timeline_node import ThreeDLabsStoryboardTimeline
from .nodes.storyboard.video_node import ThreeDLabsStoryboardVideo
from .nodes.wait import ThreeDLabsJobWait

_set_default_user_dir(_comfy.user_directory())


def _register_routes() -> None:
    """Mount the settings routes (web/ uses them) only inside ComfyUI: aiohttp is loaded there already."""
    server = _comfy.prompt_server()
    if server is None:
        return
    try:
        from .nodes import routes

        routes.register(server)
    except Exception as err:  # noqa: BLE001  the nodes still work without the settings panel
        import logging

        logging.getLogger("3dlabs").warning("3DLabs: the settings routes could not be registered: %s", err)


_register_routes()

# Node ids and input names are a public contract: saved workflows refer to them. Never rename.
NODE_CLASS_MAPPINGS = {
    "3DLabsStory": ThreeDLabsStory,
    "3DLabsScenePlan": ThreeDLabsScenePlan,
    "3DLabsImageGenerate": ThreeDLabsImageGenerate,
    "3DLabsJobWait": ThreeDLabsJobWait,
    "3DLabsSceneSelect": ThreeDLabsSceneSelect,
    "3DLabsLoadProject": ThreeDLabsLoadProject,
    "3DLabsProjects": ThreeDLabsProjects,
    "3DLabsRecentJobs": ThreeDLabsRecentJobs,
    "3DLabsStoryboardTimeline": ThreeDLabsStoryboardTimeline,
    "3DLabsStoryboardVideo": ThreeDLabsStoryboardVideo,
}

# A node ComfyUI reuses from its cache runs no code, and current cores send its last text and images to
# the browser again only for nodes that ask (a template opened anew would show no result at all).
for _node_class in NODE_CLASS_MAPPINGS.values():
    if _node_class is not ThreeDLabsSceneSelect:  # the one node without text or images to show
        _node_class.HAS_INTERMEDIATE_OUTPUT = True

NODE_DISPLAY_NAME_MAPPINGS = {
    "3DLabsStory": "3DLabs Story",
    "3DLabsScenePlan": "3DLabs Scene Plan",
    "3DLabsImageGenerate": "3DLabs Image Generate",
    "3DLabsJobWait": "3DLabs Job Wait",
    "3DLabsSceneSelect": "3DLabs Scene Select",
    "3DLabsLoadProject": "3DLabs Load Project",
    "3DLabsProjects": "3DLabs Projects",
    "3DLabsRecentJobs": "3DLabs Recent Jobs",
    "3DLabsStoryboardTimeline": "3DLabs Storyboard Timeline",
    "3DLabsStoryboardVideo": "3DLabs Storyboard Video",
}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
