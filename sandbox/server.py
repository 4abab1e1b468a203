"""SandboxServer: the Python API that starts, drives and stops the sandbox.

It runs the API server and the file server (the stand-in CDN) on loopback in daemon threads; tests
and the demo use it to mint and revoke tokens, set faults, read counters, make and look up jobs, and
reset. The same over HTTP (the ``/__sandbox/*`` routes: faults, token minting, stats, reset; not jobs)
is served only when asked for with ``debug_routes=True``: the sandbox ComfyUI starts for a user answers
them 404, so no page or LAN client can switch its faults or mint its tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import api
from .auth import DEFAULT_STATIC_TOKEN
from .core import SandboxState
from .faults import Faults
from .handlers import ApiHandler, FileHandler, HttpServer


def _checked_seconds(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("job_seconds must be a number of seconds, 0 or more (0: jobs finish at once)")
    return float(value)


class SandboxServer:
    """The local stand-in for the 3DLabs API: ``start()`` it, point the client at ``api_url``."""

    def __init__(self, job_seconds: float = 2.0, data_dir: str | Path | None = None, host: str = "127.0.0.1",
                 port: int = 0, file_port: int = 0, static_tokens: Iterable[str] | None = None,
                 require_auth: bool = True, *, clock: Callable[[], float] | None = None,
                 debug_routes: bool = False) -> None:
        self._host = host
        self._ports = (port, file_port)
        job_seconds = _checked_seconds(job_seconds)
        tokens = tuple(static_tokens) if static_tokens else (DEFAULT_STATIC_TOKEN,)
        self._state = SandboxState(job_seconds, data_dir, tokens, require_auth, clock or time.time,
                                   api.ROUTE_KEYS)
        self._state.debug_routes = debug_routes
        self._servers: list[HttpServer] = []
        self._threads: list[threading.Thread] = []
        self._stopped = False

    # lifecycle

    def start(self) -> SandboxServer:
        if self._servers:
            return self
        if self._stopped:
            raise RuntimeError("a stopped SandboxServer cannot be started again; make a new one")
        api_server = HttpServer((self._host, self._ports[0]), ApiHandler, self._state)
        try:
            file_server = HttpServer((self._host, self._ports[1]), FileHandler, self._state)
        except OSError:
            api_server.server_close()
            raise
        self._servers = [api_server, file_server]
        self._state.origin = f"http://{self._host}:{api_server.server_port}"
        self._state.file_url = f"http://{self._host}:{file_server.server_port}"
        for name, server in zip(("sandbox-api", "sandbox-files"), self._servers, strict=True):
            # A short poll interval keeps stop() prompt.
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # addresses

    def _require_started(self) -> None:
        if not self._servers:
            raise RuntimeError("SandboxServer is not started")

    @property
    def origin(self) -> str:
        self._require_started()
        return self._state.origin

    @property
    def api_url(self) -> str:
        return self.origin + "/api"

    @property
    def file_url(self) -> str:
        self._require_started()
        return self._state.file_url

    # tokens

    @property
    def static_token(self) -> str:
        return self._state.auth.static_tokens[0]

    def issue_token(self, ttl: float = 5.0) -> str:
        return self._state.auth.issue(ttl, issuer=self._state.origin)

    def revoke(self, token: str) -> None:
        self._state.auth.revoke(token)

    # state

    def reset(self) -> None:
        self._state.reset()

    def create_job(self, kind: str, params: dict, workspace_id: str = "ws_sandbox") -> str:
        """Make a job as a POST would (the fault flags set now decide how it ends), without any request:
        for tests that judge a client by the requests it sends. Returns the job's id."""
        return self._state.create_job(kind, params, workspace_id).id

    def job(self, job_id: str, workspace_id: str = "ws_sandbox") -> dict | None:
        """What the sandbox knows of a job: its kind, what it was asked (``params``: the POST's body) and the
        status GET /api/jobs/:id would answer now; None for a job this workspace does not have."""
        job = self._state.find_job(job_id, workspace_id)
        if job is None:
            return None
        return {"id": job.id, "kind": job.kind, "params": dict(job.params), "status": self._state.phase(job).status}

    def job_finish_time(self, job_id: str, workspace_id: str = "ws_sandbox") -> float | None:
        """Epoch time at which a job ends (None if unknown or never): benchmarks time detection with it."""
        job = self._state.find_job(job_id, workspace_id)
        if job is None or job.outcome == "hang":
            return None
        return job.created_at + job.duration

    def set_faults(self, **flags: Any) -> Faults:
        return self._state.set_faults(**flags)

    @property
    def faults(self) -> Faults:
        return self._state.faults

    def stats(self) -> dict:
        return self._state.stats.snapshot()

    @property
    def job_seconds(self) -> float:
        return self._state.job_seconds

    @job_seconds.setter
    def job_seconds(self, value: float) -> None:
        self._state.job_seconds = _checked_seconds(value)
