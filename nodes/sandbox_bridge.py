"""The bundled sandbox started inside ComfyUI, when the user picks "sandbox" in the settings.

For trying workflows without an account: the sandbox runs in-process on loopback and the client talks
to it with the sandbox's own token, bound to the sandbox's origin (the user's real token is neither used
nor changed). Node status text says SANDBOX, so that results are never mistaken for the real service's.
Used only when chosen explicitly; an environment THREEDLABS_BASE_URL always wins over the choice.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace

from .api import config, urls
from .api.auth import TokenProvider, TokenSource

log = logging.getLogger("3dlabs")

_lock = threading.Lock()
_server = None  # a sandbox.server.SandboxServer, imported lazily: it is rarely used


def sandbox_chosen() -> bool:
    if os.environ.get("THREEDLABS_BASE_URL", "").strip():
        return False
    settings = config.read_config_file().get("settings")
    return isinstance(settings, dict) and bool(settings.get("use_sandbox"))


def running():
    return _server


def ensure_started():
    global _server
    with _lock:
        if _server is None:
            from ..sandbox.server import SandboxServer

            data_dir = config.user_dir() / "sandbox"
            data_dir.mkdir(parents=True, exist_ok=True)
            # No debug routes: a page in the browser or a LAN client must not set faults or mint tokens.
            _server = SandboxServer(job_seconds=3.0, data_dir=data_dir).start()
            log.info("3DLabs: bundled SANDBOX started at %s (made-up content, no account)", _server.api_url)
        return _server


def stop() -> None:
    """Stop the bundled sandbox; the tests' teardown, since each test has its own user directory."""
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None


def sandbox_settings_and_tokens(current: config.Settings) -> tuple[config.Settings, TokenProvider]:
    server = ensure_started()
    settings = replace(current, base_url=server.api_url, base_url_source="bundled sandbox", workspace_id=None)
    source = TokenSource("token", server.static_token, "bundled sandbox", bound_to=urls.api_origin(server.api_url))
    return settings, TokenProvider(source, base_url=server.api_url)
