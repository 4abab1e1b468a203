"""3DLabs project and journal nodes: Load Project, Projects (list) and Recent Jobs (local journal)."""

from __future__ import annotations

import json
import os
import time

from . import images, runtime
from .api.errors import ImageError, NotFoundError, ResponseFormatError, ValidationError
from .api.journal import Journal
from .api.models import Project, ScenePlan, Story
from .api.readers import describe
from .run import NodeRun
from .types import CATEGORY, SCENE_PLAN, STORY


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


class ThreeDLabsLoadProject:
    CATEGORY = CATEGORY
    DESCRIPTION = ("Loads an existing 3DLabs project: its story, scene plan and scene images (downloaded now, in "
                   "scene order, wherever the project keeps them), without submitting any job. A project without "
                   "any image yet is an error that says so.")
    RETURN_TYPES = (STORY, SCENE_PLAN, "IMAGE", "STRING")
    RETURN_NAMES = ("story", "scene_plan", "images", "project_json")
    OUTPUT_TOOLTIPS = ("The project's story.", "The project's scene plan.",
                       "The project's scene images as one batch, in scene order.", "The whole project as JSON.")
    FUNCTION = "run"

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

    @runtime.in_thread
    def run(self, project_id, unique_id=None):
        with NodeRun("3DLabs Load Project", unique_id) as run:
            client = run.client
            try:
                project = client.get_project(project_id)
            except NotFoundError as err:
                raise unknown_project(project_id, run.settings, err) from None
            if not project.images:
                raise no_images(project)
            story = project.story or Story(raw={}, text="(this project has no story yet)")
            plan = project.scene_plan or ScenePlan(scenes=[], raw={})
            data = [client.fetch_image(ref) for ref in project.images]
            image, _mask = images.images_to_batch(data, source=f"project {project.id}")
            run.finish(f"Loaded project {project.name or project.id}: {len(plan.scenes)} scenes, "
                       f"{len(project.images)} images.")
        raw = json.dumps(project.raw, indent=2, default=str)
        return {"ui": {"text": [story.text[:2000]]}, "result": (story, plan, image, raw)}


class ThreeDLabsProjects:
    CATEGORY = CATEGORY
    DESCRIPTION = "Lists the projects of your 3DLabs workspace (id, name, date). Submits nothing."
    # Their text is the point: alone on a canvas, Run must have an output to run.
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    OUTPUT_TOOLTIPS = ("One line per project: id, name, date.",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"refresh": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                                  "control_after_generate": True,
                                                  "tooltip": "Change (or set to randomize) to list again."})}}

    @runtime.in_thread
    def run(self, refresh):
        lines = [f"{p.id}\t{p.name}\t{p.created}" for p in runtime.client_for().list_projects()]
        text = "\n".join(lines) or "(no projects in this workspace)"
        return {"ui": {"text": [text]}, "result": (text,)}


def format_age(seconds: float) -> str:
    for limit, unit, per in ((90, "s", 1), (5400, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / per:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} days ago"


class ThreeDLabsRecentJobs:
    CATEGORY = CATEGORY
    DESCRIPTION = ("Lists the most recent 3DLabs jobs from the local journal (id, kind, state, age), so that a "
                   "result paid for before a crash or restart can be collected with Job Wait.")
    # Their text is the point: alone on a canvas, Run must have an output to run.
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("text", "job_ids")
    OUTPUT_TOOLTIPS = ("One line per job: id, kind, state, age, label.", "The listed job ids, one per line.")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"limit": ("INT", {"default": 20, "min": 1, "max": 500,
                                                "tooltip": "How many jobs to list, newest first."})}}

    @classmethod
    def IS_CHANGED(cls, limit=20):
        # Re-run exactly when the journal changed: reading it is free, and it never submits anything.
        try:
            st = os.stat(Journal().path)
            return f"{st.st_mtime_ns}:{st.st_size}:{limit}"
        except OSError:
            return f"none:{limit}"

    def run(self, limit):
        if limit < 1:
            raise ValidationError(f"limit must be 1 or more, not {limit}.")
        now = time.time()
        records = Journal().recent(limit)
        lines = [f"{r['id']}\t{r.get('kind', '?')}\t{r.get('state', '?')}\t"
                 f"{format_age(now - float(r.get('submitted_at') or r.get('updated_at') or now))}\t{r.get('label', '')}"
                 for r in records]
        text = "\n".join(lines) or "(no 3DLabs jobs recorded yet)"
        ids = "\n".join(r["id"] for r in records if not r["id"].startswith("unknown-"))
        return {"ui": {"text": [text]}, "result": (text, ids)}
