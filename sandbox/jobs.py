"""Job records and their lifecycle: status and progress are computed from timestamps on every read.

No thread runs per job. A job is queued for the first 10% of its duration, then processing with
progress rising linearly, then completed (or failed, or stuck at 99% when it hangs).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from . import content
from .faults import Faults
from .images import ASPECT_SIZES

KINDS = ("story", "scene-planning", "image")
FAILED_MESSAGE = "Sandbox: generation failed (injected)"
QUEUED_SHARE = 0.1
HUNG_PROGRESS = 99.0
SLOW_FACTOR = 10.0

# Upper-case marker words in a topic or prompt; ordinary prose ("fail", "slow") never trips them.
_MARKERS = {name: re.compile(rf"\b{name}\b") for name in ("FAIL", "HANG", "SLOW")}


@dataclass(frozen=True)
class JobRecord:
    id: str
    workspace_id: str
    kind: str
    params: dict
    created_at: float  # epoch seconds
    duration: float  # seconds from creation to the end
    outcome: str  # "ok", "fail" or "hang", fixed at creation
    visible_at: float  # before this instant the job answers 404 (eventual consistency fault)
    project_id: str | None = None


@dataclass(frozen=True)
class Phase:
    status: str  # queued, processing, completed, failed
    progress: float  # 0..100
    finished_at: float | None = None


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def _marked(params: dict, word: str) -> bool:
    text = params.get("prompt") or params.get("topic") or ""
    return bool(_MARKERS[word].search(text))


def plan_job(job_id: str, kind: str, params: dict, workspace_id: str, now: float, job_seconds: float,
             faults: Faults) -> JobRecord:
    """A new job: its duration and fate are decided now, so later flag changes leave it alone."""
    if faults.fail_jobs or _marked(params, "FAIL"):
        outcome = "fail"
    elif faults.hang_jobs or _marked(params, "HANG"):
        outcome = "hang"
    else:
        outcome = "ok"
    duration = job_seconds * (SLOW_FACTOR if _marked(params, "SLOW") else 1.0)
    return JobRecord(
        id=job_id,
        workspace_id=workspace_id,
        kind=kind,
        params=params,
        created_at=now,
        duration=duration,
        outcome=outcome,
        visible_at=now + faults.job_404_seconds,
        project_id=params.get("projectId"),
    )


def phase(job: JobRecord, now: float) -> Phase:
    elapsed = now - job.created_at
    queued_for = job.duration * QUEUED_SHARE
    if elapsed < queued_for:
        return Phase("queued", 0.0)
    if elapsed < job.duration or job.outcome == "hang":
        running_for = max(job.duration - queued_for, 1e-9)
        progress = min(100.0 * (elapsed - queued_for) / running_for, HUNG_PROGRESS)
        return Phase("processing", progress)
    finished_at = job.created_at + job.duration
    if job.outcome == "fail":
        return Phase("failed", 100.0, finished_at)
    return Phase("completed", 100.0, finished_at)


def image_size(params: dict) -> tuple[int, int]:
    return ASPECT_SIZES.get(params.get("aspectRatio") or "16:9", ASPECT_SIZES["16:9"])


def image_url(file_url: str, name: str) -> str:
    return f"{file_url}/files/{name}.png"


def result_of(job: JobRecord, file_url: str) -> dict[str, Any]:
    """The canonical result of a completed job (fault flags may reshape it on the way out)."""
    params = job.params
    if job.kind == "story":
        return content.story(params["topic"], params["maxMinutes"], params["provider"])
    if job.kind == "scene-planning":
        return content.scene_plan(params["story"], params["maxMinutes"], params.get("videoModel"))
    width, height = image_size(params)
    return {
        "imageUrl": image_url(file_url, job.id),
        "width": width,
        "height": height,
        "model": params["model"],
        "provider": params["provider"],
    }
