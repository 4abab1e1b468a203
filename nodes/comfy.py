"""The only module that touches ComfyUI: progress, interrupt, status text, server and folders.

Every ComfyUI import is lazy and guarded, so the pack imports and its tests run where ComfyUI is
absent; there the adapter degrades to no-ops and to a local interrupt flag that tests can set.
"""

from __future__ import annotations

import logging
import threading
from functools import cache

log = logging.getLogger("3dlabs")

_local_interrupt = threading.Event()  # stands in for ComfyUI's flag when ComfyUI is absent


class LocalInterrupted(Exception):
    """Raised by :func:`check_interrupt` outside ComfyUI (ComfyUI has its own exception)."""


@cache
def _module(name: str):
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # noqa: BLE001  absent, or broken: either way we run without it
        return None


def interrupt_exception_type() -> type[BaseException]:
    mm = _module("comfy.model_management")
    return getattr(mm, "InterruptProcessingException", LocalInterrupted) if mm else LocalInterrupted


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel (cheap; call often)."""
    mm = _module("comfy.model_management")
    if mm is not None:
        if mm.processing_interrupted():
            raise mm.InterruptProcessingException()
        return
    if _local_interrupt.is_set():
        raise LocalInterrupted()


def set_local_interrupt(value: bool = True) -> None:
    """Tests (and scripts) outside ComfyUI use this to simulate the Cancel button."""
    if value:
        _local_interrupt.set()
    else:
        _local_interrupt.clear()


def prompt_server():
    server_mod = _module("server")
    return getattr(getattr(server_mod, "PromptServer", None), "instance", None) if server_mod else None


def listen_hosts() -> tuple[str, ...]:
    """The addresses ComfyUI serves on (``--listen``, and the PromptServer's own); () outside ComfyUI.

    The pack's routes accept a Host header naming one of these (besides loopback names), so that a
    page reaching ComfyUI through DNS rebinding, whose Host names the attacker's domain, is refused.
    """
    hosts: list[str] = []
    cli = _module("comfy.cli_args")
    listen = getattr(getattr(cli, "args", None), "listen", None) if cli is not None else None
    if isinstance(listen, str):
        hosts += [h.strip() for h in listen.split(",") if h.strip()]
    address = getattr(prompt_server(), "address", None)
    if isinstance(address, str) and address.strip():
        hosts.append(address.strip())
    return tuple(dict.fromkeys(hosts))


def executing_context() -> tuple[str | None, str | None]:
    """(prompt_id, node_id) of the node running in this context, when ComfyUI provides it."""
    utils = _module("comfy_execution.utils")
    ctx = utils.get_executing_context() if utils is not None else None
    if ctx is None:
        return None, None
    return ctx.prompt_id, ctx.node_id


def current_client_id() -> str | None:
    server = prompt_server()
    return getattr(server, "client_id", None) if server is not None else None


def user_directory() -> str | None:
    fp = _module("folder_paths")
    try:
        return fp.get_user_directory() if fp is not None else None
    except Exception:  # noqa: BLE001
        return None


class NodeProgress:
    """Progress bar and status text for one node execution; safe to call from worker threads."""

    def __init__(self, node_id: str | None, total: int = 100) -> None:
        self.node_id = node_id
        self.total = total
        self.client_id = current_client_id()  # captured now: it belongs to the prompt being run
        self._bar = None
        utils = _module("comfy.utils")
        if utils is not None and node_id is not None:
            try:
                self._bar = utils.ProgressBar(total, node_id=node_id)
            except Exception:  # noqa: BLE001
                self._bar = None
        self.last_text = ""

    def update(self, fraction: float) -> None:
        if self._bar is None:
            return
        value = int(max(0.0, min(1.0, fraction)) * self.total)
        try:
            self._bar.update_absolute(value, self.total)
        except interrupt_exception_type():
            raise
        except Exception:  # noqa: BLE001  a progress display must never fail a paid job
            log.debug("3DLabs: progress update failed", exc_info=True)

    def text(self, message: str) -> None:
        self.last_text = message
        server = prompt_server()
        if server is None or self.node_id is None:
            return
        try:
            server.send_progress_text(message, self.node_id, self.client_id)
        except Exception:  # noqa: BLE001
            log.debug("3DLabs: progress text failed", exc_info=True)


PREVIEW_SIZE_DEFAULT = 512  # ComfyUI's own default for --preview-size


def preview_size() -> int:
    """The largest side of the previews ComfyUI shows on nodes (``--preview-size``)."""
    cli = _module("comfy.cli_args")
    size = getattr(getattr(cli, "args", None), "preview_size", None) if cli is not None else None
    return size if isinstance(size, int) and size > 0 else PREVIEW_SIZE_DEFAULT


def preview(node_id: str | None, image, done: int, total: int) -> None:
    """Show a small PIL ``image`` on the node through ComfyUI's progress bar; a no-op without ComfyUI.

    Best effort: a preview must never fail or hold up a paid result, so nothing here raises (ComfyUI's
    progress hook raises on Cancel; the run notices Cancel on its own).
    """
    utils = _module("comfy.utils")
    if utils is None or node_id is None:
        return
    try:
        utils.ProgressBar(total, node_id=node_id).update_absolute(done, total, ("JPEG", image, preview_size()))
    except Exception:  # noqa: BLE001
        log.debug("3DLabs: preview failed", exc_info=True)
