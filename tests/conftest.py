"""Shared fixtures: load the pack exactly as ComfyUI does, run the sandbox on loopback, isolate state.

ComfyUI imports a custom node folder with ``spec_from_file_location`` on its ``__init__.py`` under
its full path (dots replaced); we do the same, so that only relative imports can work and the
checkout's folder name never matters. Every sandbox a test starts asks for the ``/__sandbox/*``
debug routes (faults, token minting, stats, reset), which a user's sandbox never serves.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACK_DIR = Path(__file__).resolve().parent.parent
# ComfyUI names a custom node folder's module after its full path, dots replaced (nodes.py).
PACK_NAME = str(PACK_DIR).replace(".", "_x_")
# Tools the tests share with the scripts (the workflow formats) live in scripts/; tests/ comes first.
sys.path.append(str(PACK_DIR / "scripts"))


def load_pack():
    """Import the pack like ComfyUI's ``load_custom_node`` does, once per test session."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(PACK_NAME, PACK_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return module


def import_pack_in_fresh_process(tmp_path, *, before: str = "", after: str = "") -> subprocess.CompletedProcess:
    """Import the pack as ComfyUI does in a new interpreter with a bare environment.

    ``before`` runs ahead of the import; ``after`` runs once it is loaded and sees ``module`` (the pack)
    and ``name`` (its module name). Both are dedented Python source.
    """
    probe = "\n".join([
        "import importlib.util, sys",
        textwrap.dedent(before),
        "path = sys.argv[1]",
        "name = path.replace('.', '_x_')",
        "spec = importlib.util.spec_from_file_location(name, path + '/__init__.py')",
        "module = importlib.util.module_from_spec(spec)",
        "sys.modules[name] = module",
        "spec.loader.exec_module(module)",
        textwrap.dedent(after),
    ])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "THREEDLABS_USER_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", probe, str(PACK_DIR)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def pack_module(dotted: str):
    """Import ``dotted`` (e.g. ``"nodes.api.readers"``) from inside the loaded pack."""
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{dotted}")


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's real token, base URL, limits or user directory (the pack's own
    settings; the suite's opt-in switches such as THREEDLABS_WRITE_THUMBNAILS stay)."""
    for name in (
        "THREEDLABS_TOKEN",
        "THREEDLABS_TOKEN_COMMAND",
        "THREEDLABS_BASE_URL",
        "THREEDLABS_WORKSPACE_ID",
        "THREEDLABS_PROFILE",
        "THREEDLABS_MAX_JOBS",
        "THREEDLABS_MAX_JOBS_PER_HOUR",
        "THREEDLABS_MAX_JOBS_PER_DAY",
        "THREEDLABS_DRY_RUN",
        "THREEDLABS_ALLOWED_HOSTS",
        "THREEDLABS_MAX_IN_FLIGHT",
        "THREEDLABS_JOURNAL_DAYS",
        "THREEDLABS_REUSE",
        "THREEDLABS_TIMELINE_MAX_BYTES",
        "THREEDLABS_MAX_DECODED_MEGAPIXELS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("THREEDLABS_USER_DIR", str(tmp_path / "user"))


def start_sandbox(**kwargs):
    """A started SandboxServer with its debug routes, as tests want it; the caller stops it."""
    return pack_module("sandbox.server").SandboxServer(debug_routes=True, **kwargs).start()


@pytest.fixture(scope="session")
def sandbox_server():
    """One sandbox for the session (fast jobs); tests reset it through ``sandbox``."""
    server = start_sandbox(job_seconds=0.3)
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, monkeypatch):
    """The running sandbox, reset to a clean state, with the client's env pointing at it."""
    sandbox_server.reset()
    monkeypatch.setenv("THREEDLABS_BASE_URL", sandbox_server.api_url)
    monkeypatch.setenv("THREEDLABS_TOKEN", sandbox_server.static_token)
    return sandbox_server


def jobs_created(server) -> dict:
    """The sandbox's count of jobs created per kind, without the kinds it made none of."""
    return {kind: n for kind, n in server.stats()["jobs_created"].items() if n}


def journal_events(*events: dict, journal=None) -> None:
    """Write job journal events ({"event": "submitted" or "state", "id", "time", ...}) as they would
    have been written at their own ``time``: the records an earlier run left behind."""
    journal_mod = pack_module("nodes.api.journal")
    journal = journal or journal_mod.Journal()
    journal.transaction(lambda conn: [journal_mod._apply(conn, event) for event in events])


@pytest.fixture
def fresh_runtime():
    """Node-level state reset around a test: per-prompt tallies, cached clients, the Cancel flag, and
    the sandbox the settings may have started (each test has its own user directory)."""
    clients = pack_module("nodes.clients")
    comfy = pack_module("nodes.comfy")
    pack_module("nodes.spend").reset_tallies()
    clients.reset_clients()
    comfy.set_local_interrupt(False)
    yield
    comfy.set_local_interrupt(False)
    clients.reset_clients()
    pack_module("nodes.sandbox_bridge").stop()


@pytest.fixture
def fast_retries(monkeypatch):
    """The client's one retry policy, same rules with short backoff (every client made in the test)."""
    http = pack_module("nodes.api.http")
    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base_delay=0.005, max_delay=0.02))


def poll_fast(patch: pytest.MonkeyPatch, interval: float = 0.02) -> None:
    """Job polling at test speed: the engine's own schedule (nodes/api/jobs.py), every step ``interval``
    seconds or so instead of tenths of a second, and Cancel looked at as often."""
    jobs = pack_module("nodes.api.jobs")
    for name, value in (("FIRST_POLL_SECONDS", 0.0), ("MIN_INTERVAL", interval), ("GROWTH", interval / 4),
                        ("PREDICT_FLOOR", interval), ("CANCEL_CHECK_SECONDS", max(interval, 0.02))):
        patch.setattr(jobs, name, value)


@pytest.fixture
def fast_polls(monkeypatch):
    """``poll_fast`` for the test: its waits poll about every 20 ms."""
    poll_fast(monkeypatch)


@pytest.fixture(scope="module")
def app():
    """The pack's routes (the handlers ComfyUI mounts) on a plain aiohttp app on 127.0.0.1."""
    pytest.importorskip("aiohttp.web", reason="aiohttp (shipped with ComfyUI) is needed for the route tests")
    from routes_app import LoopbackApp

    server = LoopbackApp(pack_module("nodes.routes"))
    yield server
    server.stop()
