"""The sandbox's state and what can be done to it, shared by the API server and the file server.

Owns the store, the token authority, the counters, the fault flags and dice, the clock, the result
and image caches. Knows nothing about HTTP.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import content, jobs, projects
from .auth import TokenAuthority
from .faults import Dice, Faults, merged
from .images import PngCache, render_png
from .stats import Stats
from .store import Store

WORKSPACES = (
    {"id": "ws_sandbox", "name": "Sandbox Studio", "role": "owner"},
    {"id": "ws_team", "name": "Sandbox Team", "role": "member"},
)
DEFAULT_WORKSPACE = "ws_sandbox"
_RESULT_CACHE_SIZE = 256
IDEMPOTENCY_SECONDS = 24 * 3600  # how long an Idempotency-Key is remembered, as Stripe does


def iso(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds and a Z, the form JavaScript's toISOString() gives."""
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class SandboxState:
    def __init__(self, job_seconds: float, data_dir: str | Path | None, static_tokens: Iterable[str],
                 require_auth: bool, clock: Callable[[], float], route_keys: Iterable[str]) -> None:
        self.clock = clock
        self.initial_job_seconds = float(job_seconds)
        self.job_seconds = float(job_seconds)
        self.require_auth = require_auth
        self.file_url = ""  # known once the file server is bound
        self.debug_routes = False  # the /__sandbox/* routes: for tests and `python -m sandbox --debug-routes`
        self.origin = ""
        self.store = Store(data_dir)
        self._seed()
        self.workspace_ids = frozenset(w["id"] for w in self.store.workspaces())
        self.auth = TokenAuthority(self._jwt_secret(), static_tokens, clock)
        self.stats = Stats(route_keys)
        self.faults = Faults()
        self.dice = Dice(self.faults.fault_seed)
        self.images = PngCache()
        self._lock = threading.Lock()
        self._results: OrderedDict[str, Any] = OrderedDict()
        self._rotation = itertools.count()
        self._keys: dict[tuple[str, str], tuple[str, str, float]] = {}  # (workspace, key) -> (request, job, time)
        self._keys_lock = threading.Lock()

    def _seed(self) -> None:
        for position, workspace in enumerate(WORKSPACES):
            self.store.put_workspace(workspace, position)
            for seeded in (content.demo_project(workspace["id"]), content.partial_project(workspace["id"])):
                self.store.put_project(seeded)
                for scene in seeded["scenes"]:
                    self.store.put_seed_image(scene["image"], {
                        "prompt": scene["imagePrompt"], "model": content.DEMO_MODEL,
                        "sceneNumber": scene["sceneNumber"], "aspectRatio": "16:9",
                    })

    def _jwt_secret(self) -> bytes:
        # Kept in the store, so with a data directory tokens minted before a restart stay valid.
        stored = self.store.meta("jwt_secret")
        if stored is None:
            stored = secrets.token_hex(32)
            self.store.set_meta("jwt_secret", stored)
        return bytes.fromhex(stored)

    def close(self) -> None:
        self.images.close()
        self.store.close()

    def set_faults(self, **flags: Any) -> Faults:
        with self._lock:
            self.faults = merged(self.faults, flags)
            # Reseeding on every change makes a test's fault sequence independent of earlier tests.
            self.dice.reseed(self.faults.fault_seed)
            return self.faults

    def reset(self) -> None:
        """Forget jobs, counters, faults and revocations; workspaces and seeded projects stay."""
        with self._lock:
            self.store.clear_jobs()
            self.faults = Faults()
            self.dice.reseed(self.faults.fault_seed)
            self.job_seconds = self.initial_job_seconds
            self._results.clear()
            self._rotation = itertools.count()
        with self._keys_lock:
            self._keys.clear()
        self.stats.clear()
        self.auth.clear_revocations()
        self.images.clear()

    def workspace_known(self, workspace_id: str) -> bool:
        return workspace_id in self.workspace_ids

    def next_rotation(self) -> int:
        with self._lock:
            return next(self._rotation)

    def create_job(self, kind: str, params: dict, workspace_id: str) -> jobs.JobRecord:
        job = jobs.plan_job(jobs.new_job_id(), kind, params, workspace_id, self.clock(), self.job_seconds,
                            self.faults)
        self.store.add_job(job)
        self.stats.job_created(kind)
        if job.outcome == "fail":
            self.stats.fault("failed_job")
        elif job.outcome == "hang":
            self.stats.fault("hung_job")
        if kind == "image" and job.outcome == "ok":
            self.images.prefetch(job.id, _renderer(job.params))
        return job

    def create_once(self, key: str, fingerprint: str, kind: str, params: dict,
                    workspace_id: str) -> tuple[str | None, bool]:
        """(job id, replayed) for an Idempotency-Key: the job made for it in the last 24 h when
        ``fingerprint`` (the request) matches, else a new one; (None, False) for another request's key."""
        with self._keys_lock:  # held while the job is made: a second request with the key waits, then replays
            now = self.clock()
            found = self._keys.get((workspace_id, key))
            if found is not None and now - found[2] < IDEMPOTENCY_SECONDS:
                return (found[1], True) if found[0] == fingerprint else (None, False)
            job = self.create_job(kind, params, workspace_id)
            self._keys[(workspace_id, key)] = (fingerprint, job.id, now)
            return job.id, False

    def find_job(self, job_id: str, workspace_id: str) -> jobs.JobRecord | None:
        job = self.store.job(job_id)
        # Jobs belong to a workspace: asking from another one finds nothing, as isolation demands.
        return job if job is not None and job.workspace_id == workspace_id else None

    def phase(self, job: jobs.JobRecord) -> jobs.Phase:
        return jobs.phase(job, self.clock())

    def result(self, job: jobs.JobRecord) -> Any:
        """The canonical result of a completed job, computed once and then cached."""
        with self._lock:
            if job.id in self._results:
                self._results.move_to_end(job.id)
                return self._results[job.id]
        value = jobs.result_of(job, self.file_url)
        with self._lock:
            self._results[job.id] = value
            while len(self._results) > _RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        return value

    def project(self, workspace_id: str, project_id: str) -> dict | None:
        entries = []
        for job in self.store.project_jobs(workspace_id, project_id):
            phase = self.phase(job)
            result = self.result(job) if phase.status == "completed" else None
            entries.append(projects.Entry(job, phase, result))
        return projects.assemble(self.store.project(workspace_id, project_id), workspace_id, project_id,
                                 entries, lambda name: jobs.image_url(self.file_url, name), iso)

    def projects(self, workspace_id: str) -> list[dict]:
        ids = set(self.store.project_ids(workspace_id)) | set(self.store.job_project_ids(workspace_id))
        found = [self.project(workspace_id, project_id) for project_id in ids]
        return sorted((p for p in found if p), key=lambda p: (p["updatedAt"], p["id"]), reverse=True)

    def image_bytes(self, name: str) -> bytes | None:
        """PNG bytes of a completed image job or a seeded image, rendered on first download."""
        job = self.store.job(name) if name.startswith("job_") else None
        if job is not None:
            if job.kind != "image" or self.phase(job).status != "completed":
                return None
            spec = job.params
        else:
            spec = self.store.seed_image(name)
            if spec is None:
                return None
        return self.images.get_or_render(name, _renderer(spec))


def _renderer(spec: dict):
    """What draws the picture an image job's ``spec`` asks for: the same at prefetch and at download."""
    width, height = jobs.image_size(spec)
    return lambda: render_png(spec["prompt"], spec["model"], spec.get("sceneNumber"), width, height)
