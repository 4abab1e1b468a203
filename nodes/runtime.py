"""The clients the nodes use: settings resolved for a run, one client per settings, the sandbox mark.

One client per settings keeps connections alive across runs; it is rebuilt when the settings change
(the settings routes reset the cache). The prompt's job tally lives in ``spend`` and is re-exported
here for callers that reset it between prompts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import comfy, sandbox_bridge
from .api.config import Settings, load_settings
from .spend import reset_tallies, tally  # noqa: F401  re-exported for routes and tests

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

T = TypeVar("T")
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
        client = _clients.get(key)
        if client is None:
            tokens = None
            if current.base_url_source == "bundled sandbox":
                _, tokens = sandbox_bridge.sandbox_settings_and_tokens(current)
            from .api.client import ThreeDLabsClient

            # Cancel reaches every wait of the client: 429 sleeps while submitting, project downloads.
            client = _clients[key] = ThreeDLabsClient(current, tokens=tokens, cancel_check=comfy.check_interrupt)
        return client


def sandbox_mark(current: Settings) -> str:
    """A visible prefix for node text when results come from the bundled sandbox."""
    return "[SANDBOX] " if current.base_url_source == "bundled sandbox" else ""


def reset_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


async def in_thread(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)


def wait_jobs(start: Callable[[], T]) -> T:
    """The moment a run's jobs are all submitted and their waits begin.

    A named step, so that fault tests can change the world (revoke the token, stop the server) after
    the jobs are paid for and before anyone polls them.
    """
    return start()
