"""3DLabs project nodes: Load Project and Projects (the workspace's project list).

Load Project reads the project and its images in the process's one pool (the one every node's requests go
through), so Cancel ends it at once wherever it is; the answer has a deadline of its own, and the
images' decoded pixels a budget (a shared project is anyone's bytes).
"""

from __future__ import annotations

import json
from dataclasses import replace

from . import clients, comfy, images
from .api.errors import ImageError, NotFoundError, ResponseFormatError
from .api.models import ImageRef, Project, ScenePlan, Story
from .api.readers import describe
from .run import NodeRun
from .types import SCENE_PLAN, STORY, Node


def no_images(project: Project) -> Exception:
    """The error for a project without a single image: it names the project and the keys it holds."""
    parts = ["a story"] if project.story else []
    if project.scene_plan:
        parts.append(f"a scene plan of {len(project.scene_plan.scenes)} scenes")
    seen = describe(project.raw)
    if not parts:
        return ResponseFormatError(f"project {project.id} holds no story, scene plan or image that the pack can "
                                   f"read ({seen})")
    return ImageError(f"It has {' and '.join(parts)} but no image URL or image data anywhere ({seen})",
                      summary=f"3DLabs project {project.id} has no scene images yet.",
                      hint="Generate them with 3DLabs Image Generate (same project_id), then load it again.")


def unknown_project(project_id: str, settings, err: NotFoundError) -> NotFoundError:
    """3DLabs' bare "not found" names neither the id nor where it looked: say both, and how to list."""
    where = f"workspace {settings.workspace_id}" if settings.workspace_id else "your default workspace"
    return NotFoundError(
        f"3DLabs has no project {project_id!r} in {where} at {settings.base_url} ({err.detail})",
        status=err.status, summary=f"3DLabs project {project_id} was not found.",
        hint="Pick one from the list on this node (Refresh updates it), or run 3DLabs Projects to list the "
        "projects of this workspace; a project of another workspace needs that workspace in the settings.")


def place_images(refs: list[ImageRef]) -> tuple[list[ImageRef], list[ImageRef]]:
    """(the batch's images, one per scene in scene order, each with its scene; the images left out).

    An image with a scene number is that scene's, and of two or more for one scene the first found is
    used. Images without one are scenes 1, 2, ... in the order found when no image has a number; beside
    numbered ones there is no telling which scenes they are, so they are left out.
    """
    if all(ref.scene is None for ref in refs):
        return [replace(ref, scene=number) for number, ref in enumerate(refs, 1)], []
    chosen: dict[int, ImageRef] = {}
    left_out = []
    for ref in refs:
        if ref.scene is None or ref.scene in chosen:
            left_out.append(ref)
        else:
            chosen[ref.scene] = ref
    return [chosen[number] for number in sorted(chosen)], left_out


def _scenes(numbers) -> str:
    return f"scene{'s' if len(numbers) != 1 else ''} {', '.join(map(str, numbers))}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def load_report(project: Project, plan: ScenePlan, placed: list[ImageRef], left_out: list[ImageRef]
                ) -> tuple[list[str], dict]:
    """What the node says about the images (lines), and the keys it adds to project_json."""
    covered = [ref.scene for ref in placed]
    missing = [scene.number for scene in plan.scenes if scene.number not in covered]
    lines = [f"Loaded project {project.name or project.id}: {_plural(len(plan.scenes), 'scene')}, "
             f"{_plural(len(placed), 'image')} ({_scenes(covered)})."]
    if missing:
        lines.append(f"No image yet for {_scenes(missing)}: the storyboard leaves "
                     f"{'it' if len(missing) == 1 else 'them'} out.")
    for number in sorted({ref.scene for ref in left_out if ref.scene is not None}):
        extra = sum(ref.scene == number for ref in left_out)
        lines.append(f"Scene {number} has {extra + 1} images: the first found is used, {extra} left out.")
    if unnumbered := sum(ref.scene is None for ref in left_out):
        lines.append(f"{_plural(unnumbered, 'image')} without a scene number left out (the other images have "
                     "scene numbers, so there is no telling which scenes these are).")
    shown = [{"scene": ref.scene, "kind": ref.kind,
              "value": ref.value if len(ref.value) <= 80 else ref.value[:77] + "..."} for ref in left_out]
    return lines, {"image_scenes": covered, "scenes_without_image": missing, "images_left_out": shown}


class ThreeDLabsLoadProject(Node):
    SEARCH_ALIASES = ["load project", "open project", "3dlabs project", "project to video", "scene images"]
    DESCRIPTION = ("Loads an existing 3DLabs project: its story, scene plan and scene images (downloaded now, "
                   "wherever the project keeps them), without submitting any job. Each image goes to the scene "
                   "whose number sits beside it (of two for one scene, the first found); images without a scene "
                   "number count as scenes 1, 2, ... in the order found when no image has one, and are left out "
                   "otherwise. The batch holds the scenes that have an image, in scene order; scenes without one "
                   "are named on the node and in project_json, and Storyboard Timeline / Video leave them out. A "
                   "project without any image yet is an error that says so.")
    RETURN_TYPES = (STORY, SCENE_PLAN, "IMAGE", "STRING")
    RETURN_NAMES = ("story", "scene_plan", "images", "project_json")
    OUTPUT_TOOLTIPS = ("The project's story.",
                       "The project's scene plan; it tells which scenes the image batch covers.",
                       "The scene images as one batch, in scene order: one per scene that has an image.",
                       "The whole project as JSON, with image_scenes (the scene of each image of the batch) "
                       "and scenes_without_image.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"project_id": ("STRING", {"default": "", "tooltip": (
            "The 3DLabs project (session) id; the dropdown on the node lists your workspace's projects.")})},
            "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def VALIDATE_INPUTS(cls, project_id=None):
        if project_id is not None and not str(project_id).strip():
            return "project_id is empty: pick a project from the list on the node."
        return True

    @comfy.in_thread
    def run(self, project_id, unique_id=None):
        with NodeRun("3DLabs Load Project", unique_id) as run:
            client = run.client

            def read(_, cancel_check) -> Project:
                from .api.download import answer_deadline  # loads requests: on first use, not with the pack

                with answer_deadline(client.transport, f"project {project_id}", cancel_check):
                    return client.get_project(project_id)

            try:
                (project,) = run.each(read, [None])
            except NotFoundError as err:
                raise unknown_project(project_id, run.settings, err) from None
            if not project.images:
                raise no_images(project)
            story = project.story or Story(raw={}, text="(this project has no story yet)")
            placed, left_out = place_images(project.images)
            # A copy: the plan read from the answer stays as it was read.
            plan = replace(project.scene_plan or ScenePlan(scenes=[], raw={}),
                           image_scenes=[ref.scene for ref in placed])
            batch = images.Batch(len(placed), run.pixel_budget())

            def fetch(k: int, cancel_check) -> None:
                batch.put(k, [batch.decode(lambda: client.fetch_image(placed[k], cancel_check=cancel_check),
                                           source=images.batch_label(k, f"project {project.id}"))])

            run.each(fetch, range(len(placed)))
            image, _mask = batch.result()
            lines, keys = load_report(project, plan, placed, left_out)
            run.finish("\n".join(lines))
        # The pack's keys first, where a reader sees them, and never hidden by a project's own key.
        raw = json.dumps({**keys, **project.raw, **keys}, indent=2, default=str)
        return {"ui": {"text": ["\n".join(lines), story.text[:2000]]}, "result": (story, plan, image, raw)}


class ThreeDLabsProjects(Node):
    SEARCH_ALIASES = ["projects", "list projects", "sessions", "workspace projects"]
    DESCRIPTION = "Lists the projects of your 3DLabs workspace (id, name, date). Submits nothing."
    # Their text is the point: alone on a canvas, Run must have an output to run.
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_TOOLTIPS = ("One line per project: id, name, date.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"refresh": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                                  "control_after_generate": True,
                                                  "tooltip": "Change (or set to randomize) to list again."})}}

    @comfy.in_thread
    def run(self, refresh):
        lines = [f"{p.id}\t{p.name}\t{p.created}" for p in clients.client_for().list_projects()]
        text = "\n".join(lines) or "(no projects in this workspace)"
        return {"ui": {"text": [text]}, "result": (text,)}
