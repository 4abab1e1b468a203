"""The client a node run talks through: the settings resolved for the run, and one client per settings.

One client per settings keeps connections alive across runs; it is rebuilt when the settings change
(the settings routes reset the cache).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import comfy, sandbox_bridge
from .api.config import Settings, load_settings

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

_clients: dict[tuple, ThreeDLabsClient] = {}
_clients_lock = threading.Lock()


def settings() -> Settings:
    current = load_settings()
    if sandbox_bridge.sandbox_chosen():
        current, _ = sandbox_bridge.sandbox_settings_and_tokens(current)
    return current


def client_for(current: Settings | None = None) -> ThreeDLabsClient:
    current = current or settings()
    key = (current.base_url, current.workspace_id, current.profile, current.max_in_flight)
    with _clients_lock:
        if key not in _clients:
            from .api.client import ThreeDLabsClient

            tokens = None
            if current.base_url_source == "bundled sandbox":
                _, tokens = sandbox_bridge.sandbox_settings_and_tokens(current)
            # Cancel reaches every wait of the client: 429 sleeps while submitting, project downloads.
            _clients[key] = ThreeDLabsClient(current, tokens=tokens, cancel_check=comfy.check_interrupt)
        return _clients[key]


def reset_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
