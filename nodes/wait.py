"""3DLabs Job Wait node: collect jobs by id (submitted with wait off, or before a crash or restart)."""

from __future__ import annotations

import json
import re
import time

from . import comfy, images, previews
from .api import jobs as engine
from .api import validation
from .api.errors import ResponseFormatError, ValidationError
from .api.models import Job
from .run import NodeRun
from .types import Node, scalar_input

_SPLIT = re.compile(r"[\s,;]+")
UNKNOWN_ID_GRACE_SECONDS = 2.0


def parse_job_ids(value) -> list[str]:
    """One id, several separated by commas or newlines, or a list of either; order kept, repeats dropped."""
    items = [str(item) for item in (value if isinstance(value, list) else [value]) if item is not None]
    return list(dict.fromkeys(p for p in _SPLIT.split(",".join(items)) if p and p != "dry-run"))


def describe_result(job: Job, kind: str | None, client) -> tuple[str, bool]:
    """Readable text for a finished job, and whether it carries images."""
    if kind in (None, "image"):
        try:
            client.image_refs_of(job)
            return f"job {job.id}: image", True
        except ResponseFormatError:
            if kind == "image":
                raise
    if kind in (None, "scene-plan"):
        try:
            return client.scene_plan_of(job).text(), False
        except ResponseFormatError:
            if kind == "scene-plan":
                raise
    try:
        return client.story_of(job).text, False
    except ResponseFormatError:
        return json.dumps(job.result, indent=2, default=str)[:20000], False


def _created_at(records: dict[str, dict], ids: list[str]) -> list[float]:
    """Monotonic creation times from the journal, so that a job submitted long ago that 3DLabs does not
    know gets no 404 grace. An id the journal never saw was pasted or made elsewhere, so a 404 for it is
    most likely a wrong id: it gets a short grace, not the full one."""
    now_mono, now_wall = time.monotonic(), time.time()
    unknown_age = max(0.0, engine.NOT_FOUND_GRACE_SECONDS - UNKNOWN_ID_GRACE_SECONDS)
    out = []
    for job_id in ids:
        submitted = records[job_id].get("submitted_at")
        out.append(now_mono - max(0.0, now_wall - float(submitted)) if isinstance(submitted, (int, float))
                   else now_mono - unknown_age)
    return out


class ThreeDLabsJobWait(Node):
    SEARCH_ALIASES = ["job wait", "collect job", "job result", "resume job", "async job"]
    DESCRIPTION = ("Waits for 3DLabs jobs by id and returns their results: images as one batch, text for stories "
                   "and plans, and the raw result JSON. Use it after Image Generate with wait off, or to collect a "
                   "job listed by Recent Jobs after a crash or restart. Never submits anything.")
    RETURN_TYPES = ("STRING", "IMAGE", "STRING")
    RETURN_NAMES = ("result_json", "images", "text")
    OUTPUT_TOOLTIPS = (
        "The jobs' results as JSON (a list when there are several).",
        "Every result image as one batch, in job order (a placeholder when there are none).",
        "Readable text: a story, a scene plan, or a line per image job.",
    )
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "job_id": ("STRING", {"multiline": True, "default": "", "tooltip": (
                    "One job id, several separated by commas or new lines, or Image Generate's job_ids.")}),
                "timeout_seconds": ("INT", {"default": 600, "min": 1, "max": 86400, "tooltip": (
                    "How long to wait; on timeout the jobs keep running and can be collected again.")}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @comfy.in_thread
    def run(self, job_id, timeout_seconds, unique_id=None):
        ids = parse_job_ids(job_id)
        timeout = float(scalar_input(timeout_seconds))
        if not ids:
            raise ValidationError("No job id given: paste one, or connect Image Generate's job_ids.")
        for one in ids:
            validation.optional_id("job_id", one)  # refuse before any request, not as a polling failure
        with NodeRun("3DLabs Job Wait", scalar_input(unique_id)) as run:
            client = run.client
            records = {one: client.journal.find(one) or {} for one in ids}
            kinds = {one: rec.get("kind") for one, rec in records.items()}

            def refs_of(job: Job):
                # Only results that hold images are fetched (a story's or a plan's are not).
                kind = kinds.get(job.id)
                return client.image_refs_of(job) if describe_result(job, kind, client)[1] else []

            jobs = run.collect(ids, _created_at(records, ids), timeout, refs_of)
            text = "\n\n".join(describe_result(job, kinds.get(job.id), client)[0] for job in jobs)
            image, _mask = run.images or images.empty_image(64, 64, 1)
            payload = [{"id": j.id, "status": j.status, "result": j.result} for j in jobs]
            run.finish(f"Collected {len(jobs)} job(s).")
        result_json = json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, default=str)
        ui = {"text": [text]}
        if run.images and (shown := previews.ui_images(image)):  # real size, not the small live previews
            ui["images"] = shown
        return {"ui": ui, "result": (result_json, image, text)}
