"""ComfyUI's interrupt machinery, faked where ComfyUI is absent, as both supported cores have it.

What matters for Cancel and cannot be had without ComfyUI: ``InterruptProcessingException`` is an
``Exception`` in 0.3.64 and a ``BaseException`` in current cores; the flag is set by ``/interrupt`` and
read by ``processing_interrupted()``; and the progress hook behind ``ProgressBar.update_absolute`` calls
``throw_exception_if_processing_interrupted()``, which clears the flag before it raises. ``install``
puts these in front of the pack's adapter (``nodes/comfy.py``) for one test.
"""

from __future__ import annotations

import threading
import types

from conftest import pack_module


class FakeComfyUI:
    def __init__(self, base_exception: bool) -> None:
        self.kind = "current" if base_exception else "0.3.64"
        parent = BaseException if base_exception else Exception
        self.Interrupt = type("InterruptProcessingException", (parent,), {})
        self.flag = threading.Event()
        self.lock = threading.RLock()
        self.hook_raised = 0  # how often the progress hook cleared the flag and raised
        self.previews = 0
        self.press_at_preview: int | None = None  # press Cancel inside the hook of this preview (1-based)
        self.pressed_at: float | None = None
        fake = self

        def interrupt_current_processing(value=True):
            (fake.flag.set if value else fake.flag.clear)()

        def throw_exception_if_processing_interrupted():
            with fake.lock:
                if fake.flag.is_set():
                    fake.flag.clear()
                    fake.hook_raised += 1
                    raise fake.Interrupt()

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total, self.node_id = total, node_id

            def update_absolute(self, value, total=None, preview=None):
                if preview is not None:
                    fake.previews += 1
                    if fake.previews == fake.press_at_preview:
                        fake.press_cancel()  # the press lands while ComfyUI's hook runs: it sees it first
                throw_exception_if_processing_interrupted()  # what ComfyUI's hook in main.py does

        self.model_management = types.SimpleNamespace(
            InterruptProcessingException=self.Interrupt, processing_interrupted=self.flag.is_set,
            interrupt_current_processing=interrupt_current_processing,
            throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted)
        self.utils = types.SimpleNamespace(ProgressBar=ProgressBar)

    def press_cancel(self) -> None:
        """What ComfyUI's /interrupt does: set the flag, nothing more."""
        import time

        self.pressed_at = time.monotonic()
        self.flag.set()


def install(monkeypatch, base_exception: bool) -> FakeComfyUI:
    comfy = pack_module("nodes.comfy")
    fake = FakeComfyUI(base_exception)
    modules = {"comfy.model_management": fake.model_management, "comfy.utils": fake.utils}
    monkeypatch.setattr(comfy, "_module", lambda name: modules.get(name))
    return fake
