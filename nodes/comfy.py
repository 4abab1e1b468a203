"""The only module that touches ComfyUI: progress, previews, interrupt, server and folders.

Every ComfyUI import is lazy and guarded, so the pack imports and its tests run where ComfyUI is
absent; there the adapter degrades to no-ops and to a local interrupt flag that tests can set.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from functools import cache

log = logging.getLogger("3dlabs")

_local_interrupt = threading.Event()  # stands in for ComfyUI's flag when ComfyUI is absent


class LocalInterrupted(Exception):
    """Raised by :func:`check_interrupt` outside ComfyUI, as ComfyUI 0.3.64's interrupt: an ``Exception``."""


@cache
def _module(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # noqa: BLE001  absent, or broken: either way we run without it
        return None


def _cli_arg(name: str):
    return getattr(getattr(_module("comfy.cli_args"), "args", None), name, None)


def interrupt_exception_type() -> type[BaseException]:
    return getattr(_module("comfy.model_management"), "InterruptProcessingException", LocalInterrupted)


def rearm_interrupt() -> None:
    """Set Cancel again after catching ComfyUI's interrupt: its progress hook clears the flag before it
    raises, so a caught interrupt would otherwise be a Cancel lost for every other wait of the run."""
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.interrupt_current_processing(True)
    else:
        _local_interrupt.set()


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel, or if the prompt that ran this node
    has ended without it (cheap; call often)."""
    mm = _module("comfy.model_management")
    interrupted = mm.processing_interrupted() if mm is not None else _local_interrupt.is_set()
    abandoned = _abandoned.get()
    if interrupted or (abandoned is not None and abandoned.is_set()):
        raise interrupt_exception_type()()


# Set by in_thread when ComfyUI stops awaiting a node's thread. ComfyUI consumes the Cancel flag
# when it starts its next node (before_node_execution) and then ends the prompt, whose event loop waits for
# every thread still running: a node of the pack running concurrently would never see the Cancel and hold
# the whole queue until its jobs end. asyncio.to_thread copies context variables into the node's thread.
_abandoned: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("3dlabs_abandoned",
                                                                                     default=None)


def set_local_interrupt(value: bool = True) -> None:
    """Tests (and scripts) outside ComfyUI use this to simulate the Cancel button."""
    if value:
        _local_interrupt.set()
    else:
        _local_interrupt.clear()


def prompt_server():
    return getattr(getattr(_module("server"), "PromptServer", None), "instance", None)


def listen_hosts() -> tuple[str, ...]:
    """The addresses ComfyUI serves on (``--listen``, and the PromptServer's own); () outside ComfyUI.

    The routes accept a Host naming one of these, besides loopback names (``routes_guard``).
    """
    listen = _cli_arg("listen")
    hosts = listen.split(",") if isinstance(listen, str) else []
    address = getattr(prompt_server(), "address", None)
    if isinstance(address, str):
        hosts.append(address)
    return tuple(dict.fromkeys(h.strip() for h in hosts if h.strip()))


def executing_context() -> tuple[str | None, str | None]:
    """(prompt_id, node_id) of the node running in this context, when ComfyUI provides it."""
    utils = _module("comfy_execution.utils")
    ctx = utils.get_executing_context() if utils is not None else None
    return (ctx.prompt_id, ctx.node_id) if ctx is not None else (None, None)


def _folder(getter: str) -> str | None:
    try:
        return getattr(_module("folder_paths"), getter)()
    except Exception:  # noqa: BLE001  outside ComfyUI (no folder_paths), or broken
        return None


def user_directory() -> str | None:
    return _folder("get_user_directory")


def temp_directory() -> str | None:
    """ComfyUI's folder for temporary outputs (what PreviewImage writes and /view serves as "temp")."""
    return _folder("get_temp_directory")


def _progress_bar(total: int, node_id: str | None):
    utils = _module("comfy.utils")
    return utils.ProgressBar(total, node_id=node_id) if utils is not None and node_id is not None else None


class NodeProgress:
    """Progress bar and status text for one node execution; safe to call from worker threads."""

    def __init__(self, node_id: str | None, total: int = 100) -> None:
        self.node_id = node_id
        self.total = total
        self.client_id = getattr(prompt_server(), "client_id", None)  # now: it belongs to the prompt being run
        try:
            self._bar = _progress_bar(total, node_id)
        except Exception:  # noqa: BLE001
            self._bar = None

    def update(self, fraction: float) -> None:
        if self._bar is None:
            return
        try:
            self._bar.update_absolute(int(max(0.0, min(1.0, fraction)) * self.total), self.total)
        except interrupt_exception_type():
            rearm_interrupt()
            raise
        except Exception:  # noqa: BLE001  a progress display must never fail a paid job
            log.debug("3DLabs: progress update failed", exc_info=True)

    def text(self, message: str) -> None:
        server = prompt_server()
        if server is None or self.node_id is None:
            return
        try:
            server.send_progress_text(message, self.node_id, self.client_id)
        except Exception:  # noqa: BLE001
            log.debug("3DLabs: progress text failed", exc_info=True)


def preview_size() -> int:
    """The largest side of the previews ComfyUI shows on nodes (``--preview-size``, 512 by default)."""
    size = _cli_arg("preview_size")
    return size if isinstance(size, int) and size > 0 else 512


def preview(node_id: str | None, image, done: int, total: int) -> None:
    """Show a small PIL ``image`` on the node through ComfyUI's progress bar; a no-op without ComfyUI.

    Never raises: a preview must not fail a paid result. A Cancel met here is set again, so the run's own
    checks end it at once.
    """
    try:
        bar = _progress_bar(total, node_id)
        if bar is not None:
            bar.update_absolute(done, total, ("JPEG", image, preview_size()))
    except interrupt_exception_type():
        rearm_interrupt()
    except Exception:  # noqa: BLE001
        log.debug("3DLabs: preview failed", exc_info=True)


def in_thread(fn: Callable) -> Callable:
    """A node's FUNCTION, run in a worker thread: its requests and waits never block ComfyUI's event loop.

    When ComfyUI stops awaiting it (the prompt ended on another node's error or Cancel, and its event loop
    cancels what is left), the thread is told at once (``check_interrupt`` raises in it), so it ends
    at its next wait instead of holding the prompt's end until its jobs finish.
    """

    @functools.wraps(fn)
    async def run(*args, **kwargs):
        abandoned = threading.Event()  # current in the node's thread: to_thread copies the context
        token = _abandoned.set(abandoned)
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        finally:
            _abandoned.reset(token)

    return run
