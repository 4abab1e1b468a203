"""Shared fixtures: load the pack exactly as ComfyUI does, and run the sandbox on loopback.

ComfyUI imports a custom node folder with ``spec_from_file_location`` on its ``__init__.py`` under
its full path (dots replaced); we do the same, so that only relative imports can work and the
checkout's folder name never matters.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

PACK_DIR = Path(__file__).resolve().parent.parent
# ComfyUI names a custom node folder's module after its full path, dots replaced (nodes.py).
PACK_NAME = str(PACK_DIR).replace(".", "_x_")


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


def pack_module(dotted: str):
    """Import ``dotted`` (e.g. ``"nodes.api.readers"``) from inside the loaded pack."""
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{dotted}")


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's real token, base URL or user directory."""
    for name in (
        "THREEDLABS_TOKEN",
        "THREEDLABS_TOKEN_COMMAND",
        "THREEDLABS_BASE_URL",
        "THREEDLABS_WORKSPACE_ID",
        "THREEDLABS_PROFILE",
        "THREEDLABS_MAX_JOBS",
        "THREEDLABS_DRY_RUN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("THREEDLABS_USER_DIR", str(tmp_path / "user"))


@pytest.fixture(scope="session")
def sandbox_server():
    """One sandbox for the session (fast jobs); tests reset it through ``sandbox``."""
    server_mod = pack_module("sandbox.server")
    server = server_mod.SandboxServer(job_seconds=0.3)
    server.start()
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


@pytest.fixture
def fresh_runtime():
    """Node-level state reset around a test: per-prompt tallies, cached clients, the Cancel flag."""
    runtime = pack_module("nodes.runtime")
    comfy = pack_module("nodes.comfy")
    runtime.reset_tallies()
    runtime.reset_clients()
    comfy.set_local_interrupt(False)
    yield
    comfy.set_local_interrupt(False)
    runtime.reset_clients()
