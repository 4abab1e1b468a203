"""What every node run starts from: settings resolved for the run, one client per settings, a thread.

One client per settings keeps connections alive across runs; it is rebuilt when the settings change
(the settings routes reset the cache). The prompt's job tally lives in ``spend`` and is re-exported
here for callers that reset it between prompts.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import comfy, sandbox_bridge
from .api.config import Settings, load_settings
from .spend import reset_tallies, tally  # noqa: F401  re-exported for routes and tests

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


def in_thread(fn: Callable) -> Callable:
    """A node's FUNCTION, run in a worker thread: its requests and waits never block ComfyUI's event loop.

    When ComfyUI stops awaiting it (the prompt ended on another node's error or Cancel, and its event loop
    cancels what is left), the thread is told at once (``comfy.check_interrupt`` raises in it), so it ends
    at its next wait instead of holding the prompt's end until its jobs finish.
    """

    @functools.wraps(fn)
    async def run(*args, **kwargs):
        abandoned, token = comfy.abandon_event()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        finally:
            comfy.forget_abandon_event(token)

    return run


def wait_jobs(start: Callable[[], list]) -> list:
    """The moment a run's jobs are all submitted and their waits begin: a named step, so that fault tests
    can change the world (revoke the token, stop the server) after the jobs are paid for."""
    return start()
