"""The published /api routes: matching, job creation, and the JSON answers (with their fault shapes).

Transport concerns (auth, injected errors, resets, latency) live in ``server``; this module turns a
matched request into an ``Answer``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from . import jobs, validation
from .core import SandboxState, iso
from .projects import summary

# With the image_host flag at "api", result images are under /api/files/ on the API host, behind Clerk.
API_FILE_ROOT = "/api"
_TRAILING_PARAMETER = re.compile(r"/\{[^}]+\}$")


@dataclass
class Answer:
    status: int
    body: Any = None  # a JSON value; None means an empty body
    headers: dict[str, str] = field(default_factory=dict)
    created_job: bool = False


@dataclass(frozen=True)
class Request:
    params: dict[str, str]
    body: bytes
    workspace_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # OpenAPI-style, e.g. /api/jobs/{jobId}
    handler: Callable[[SandboxState, Request], Answer]
    workspace_scoped: bool = True

    @property
    def key(self) -> str:
        """Counter name: the path without its trailing id parameter, e.g. ``GET /api/jobs``."""
        return f"{self.method} {_TRAILING_PARAMETER.sub('', self.template)}"

    @property
    def pattern(self) -> re.Pattern:
        return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template)))


def error(status: int, message: str) -> Answer:
    return Answer(status, {"error": message})


def _json_body(request: Request) -> Any:
    if not request.body.strip():
        raise validation.Invalid("Request body must be a JSON object")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise validation.Invalid("Request body is not valid JSON") from exc


def _creator(kind: str, check: Callable[[Any], dict]) -> Callable[[SandboxState, Request], Answer]:
    def create(state: SandboxState, request: Request) -> Answer:
        try:
            params = check(_json_body(request))
        except validation.Invalid as exc:
            return error(400, str(exc))
        key = request.idempotency_key
        if key is None:
            return Answer(200, {"jobId": state.create_job(kind, params, request.workspace_id).id}, created_job=True)
        # Stripe's rules: a valid request's key is kept 24 h (per workspace); the same key and body again
        # answer the first job (Idempotent-Replayed) without a new one; the key with another body is refused.
        if not 1 <= len(key) <= 255 or not key.isprintable():
            return error(400, "Idempotency-Key must be 1 to 255 printable characters")
        fingerprint = json.dumps({"kind": kind, "body": params}, sort_keys=True)
        job_id, replayed = state.create_once(key, fingerprint, kind, params, request.workspace_id)
        if job_id is None:
            return error(422, "This Idempotency-Key was already used with a different request")
        if replayed:
            return Answer(200, {"jobId": job_id}, {"Idempotent-Replayed": "true"})
        return Answer(200, {"jobId": job_id}, created_job=True)

    return create


_SYNONYMS = {
    "queued": ("queued", "pending", "in_queue", "starting"),
    "processing": ("processing", "in_progress", "running", "generating"),
    "completed": ("completed", "succeeded", "done", "success"),
    "failed": ("failed", "error", "errored", "rejected"),
}
_PROGRESS_FORMS: tuple[Callable[[float], Any], ...] = (
    lambda p: int(p),
    lambda p: round(p / 100.0, 3),
    lambda p: f"{int(p)}%",
    lambda p: round(p, 1),
    lambda p: None,
)
_ID_KEYS = ("jobId", "id", "job_id")


def _get_job(state: SandboxState, request: Request) -> Answer:
    job = state.find_job(request.params["jobId"], request.workspace_id)
    if job is None:
        return error(404, "Job not found")
    if state.clock() < job.visible_at:
        state.stats.fault("job_404")
        return error(404, "Job not found")
    phase = state.phase(job)
    result = None
    if phase.status == "completed":
        result = state.result(job)
        if job.kind == "image":
            result = _image_shape(state, job, result)
    envelope = {
        "id": job.id,
        "jobId": job.id,
        "type": job.kind,
        "status": phase.status,
        "progress": int(phase.progress),
        "result": result,
        "error": jobs.FAILED_MESSAGE if phase.status == "failed" else None,
        "createdAt": iso(job.created_at),
    }
    style = state.faults.envelope
    if style == "rotate":
        # Coprime cycle lengths (3 wrappers, 4 synonyms, 5 progress forms) reach every combination.
        turn = state.next_rotation()
        for key in _ID_KEYS:
            envelope.pop(key, None)
        envelope = {_ID_KEYS[turn % 3]: job.id, **envelope}
        envelope["status"] = _SYNONYMS[phase.status][turn % 4]
        envelope["progress"] = _PROGRESS_FORMS[turn % 5](phase.progress)
        style = ("bare", "job", "data")[turn % 3]
    if style == "job":
        return Answer(200, {"job": envelope})
    if style == "data":
        return Answer(200, {"data": envelope})
    return Answer(200, envelope)


def _image_shape(state: SandboxState, job: jobs.JobRecord, result: dict) -> dict:
    shape = state.faults.image_shape
    url = result["imageUrl"]
    if state.faults.image_host == "api":
        url = jobs.image_url(state.origin + API_FILE_ROOT, job.id)
        result = {**result, "imageUrl": url}
    if shape == "output_list":
        return {"output": [url]}
    if shape == "images_objects":
        return {"images": [{"url": url}]}
    if shape == "nested":
        return {"data": {"image_url": url}}
    if shape in ("data_url", "b64"):
        encoded = base64.b64encode(state.image_bytes(job.id) or b"").decode("ascii")
        return {"image": "data:image/png;base64," + encoded} if shape == "data_url" else {"b64_json": encoded}
    return result


def _list_sessions(state: SandboxState, request: Request) -> Answer:
    return Answer(200, {"sessions": [summary(p) for p in state.projects(request.workspace_id)]})


def _get_session(state: SandboxState, request: Request) -> Answer:
    project = state.project(request.workspace_id, request.params["id"])
    return Answer(200, project) if project is not None else error(404, "Session not found")


def _list_workspaces(state: SandboxState, request: Request) -> Answer:
    return Answer(200, state.store.workspaces())


ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/claude/stories", _creator("story", validation.story_request)),
    Route("POST", "/api/claude/scene-planning", _creator("scene-planning", validation.plan_request)),
    Route("POST", "/api/images/generate", _creator("image", validation.image_request)),
    Route("GET", "/api/jobs/{jobId}", _get_job),
    Route("GET", "/api/session/list", _list_sessions),  # before /api/session/{id}, which would match it
    Route("GET", "/api/session/{id}", _get_session),
    Route("GET", "/api/workspaces", _list_workspaces, workspace_scoped=False),
)
ROUTE_KEYS = tuple(route.key for route in ROUTES)
UNMATCHED_KEY = "unmatched"
_COMPILED = tuple((route, route.pattern) for route in ROUTES)


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for (method, path), its path parameters, and the methods the path allows at all."""
    path = path.rstrip("/") or "/"
    allowed: list[str] = []
    for route, pattern in _COMPILED:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        if route.method == method:
            return route, {k: unquote(v) for k, v in found.groupdict().items()}, [method]
        if route.method not in allowed:
            allowed.append(route.method)
    return None, {}, allowed


def dispatch(state: SandboxState, route: Route, params: dict[str, str], body: bytes,
             workspace_id: str, idempotency_key: str | None = None) -> Answer:
    return route.handler(state, Request(params, body, workspace_id, idempotency_key))
