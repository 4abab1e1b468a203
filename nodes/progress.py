"""What a node shows while it waits: ComfyUI's progress bar, a status line, and scene previews."""

from __future__ import annotations

import threading
import time

from . import comfy
from .api.models import Job


class ProgressView:
    """Turns per-job progress into ComfyUI's bar and a status line on the node (any thread)."""

    TEXT_EVERY = 0.5

    def __init__(self, node_id: str | None, label: str) -> None:
        self.progress = comfy.NodeProgress(node_id)
        self.node_id = node_id
        self.label = label
        self.job_ids: list[str] = []
        self.fractions: list[float] = []
        self.statuses: list[str] = []
        self.previews = 0
        self._started = time.monotonic()
        self._last_text = 0.0
        self._lock = threading.Lock()

    def begin(self, job_ids: list[str]) -> None:
        self.job_ids = list(job_ids)
        self.fractions = [0.0] * len(job_ids)
        self.statuses = ["queued"] * len(job_ids)
        self._started = time.monotonic()
        self.text(f"{self.label}: waiting for {len(job_ids)} job{'s' if len(job_ids) != 1 else ''}")

    def __call__(self, index: int, job: Job) -> None:
        with self._lock:
            self.statuses[index] = job.status
            if job.status == "succeeded":
                self.fractions[index] = 1.0
            elif job.progress is not None:
                self.fractions[index] = max(self.fractions[index], job.progress)
            overall = sum(self.fractions) / len(self.fractions)
            now = time.monotonic()
            due = now - self._last_text >= self.TEXT_EVERY or job.done
            if due:
                self._last_text = now
        self.progress.update(overall)
        if due:
            self.text(self.describe(now - self._started, overall))

    def describe(self, elapsed: float, overall: float) -> str:
        n = len(self.job_ids)
        if n == 1:
            return (f"{self.label}: job {self.job_ids[0]} {self.statuses[0]} · {overall * 100:.0f}% · "
                    f"{elapsed:.0f} s")
        done = sum(s == "succeeded" for s in self.statuses)
        running = sum(s == "running" for s in self.statuses)
        return f"{self.label}: {done}/{n} done, {running} running · {overall * 100:.0f}% · {elapsed:.0f} s"

    def preview(self, image) -> None:
        """Show one decoded scene image on the node as its job finishes (best effort, never raises)."""
        if image is None:
            return
        with self._lock:
            self.previews += 1
            done = self.previews
        comfy.preview(self.node_id, image, done, len(self.job_ids))

    def text(self, message: str) -> None:
        self.progress.text(message)
