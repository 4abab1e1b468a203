"""What every 3DLabs node does around its one API call: client, thread, wait, progress, spend.

- One client per settings (connection reuse), rebuilt when the settings change.
- Blocking work runs in a thread (``asyncio.to_thread``) so that independent nodes of one prompt
  run concurrently; the wait checks ComfyUI's interrupt at least every 0.25 s.
- Spend control: each node reserves its job count against a per-prompt cap before it submits,
  and a dry run reports what would be submitted without spending.
- Each node ends with a one-line summary of the prompt's 3DLabs jobs, on the node and in the log.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import comfy, sandbox_bridge
from .api.config import Settings, load_settings
from .api.errors import JobCapError
from .api.models import Job

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

log = logging.getLogger("3dlabs")

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


# --- spend control and summaries --------------------------------------------------------------


@dataclass
class PromptTally:
    submitted: dict[str, int] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    reused: int = 0
    dry_run: int = 0
    reserved: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.submitted.items())) or "none"
        text = (f"3DLabs jobs this prompt: submitted {kinds}; succeeded {self.succeeded}, failed {self.failed}, "
                f"reused {self.reused}")
        if self.dry_run:
            text += f"; dry run: {self.dry_run} not submitted"
        return text


_tallies: OrderedDict[str, PromptTally] = OrderedDict()
_tally_lock = threading.Lock()
_MAX_TALLIES = 32


def _prompt_key() -> str:
    prompt_id, _ = comfy.executing_context()
    return prompt_id or "outside-comfyui"


def tally(prompt_key: str | None = None) -> PromptTally:
    key = prompt_key or _prompt_key()
    with _tally_lock:
        t = _tallies.get(key)
        if t is None:
            t = _tallies[key] = PromptTally()
            while len(_tallies) > _MAX_TALLIES:
                _tallies.popitem(last=False)
        return t


def reset_tallies() -> None:
    with _tally_lock:
        _tallies.clear()


def _cap_error(t: PromptTally, count: int, node_label: str, current: Settings) -> JobCapError | None:
    if t.reserved + count <= current.max_jobs:
        return None
    return JobCapError(
        f"{node_label} asked for {count} job{'s' if count != 1 else ''}"
        + (f" on top of {t.reserved} already submitted by this prompt" if t.reserved else "")
        + f", over the cap of {current.max_jobs} per prompt",
        hint="If that is intended, raise the cap: set THREEDLABS_MAX_JOBS, or 'Max jobs per prompt' "
        "in ComfyUI's settings (3DLabs section).",
    )


def check_jobs(count: int, node_label: str, current: Settings) -> None:
    """Refuse now if ``count`` more jobs would pass this prompt's cap; reserve nothing.

    For a lower bound known before any request (what must be paid for whatever the journal holds), so
    that a list far over the cap is refused before a lookup, a thread or an allocation.
    """
    t = tally()
    with _tally_lock:
        err = _cap_error(t, count, node_label, current)
    if err is not None:
        raise err


def reserve_jobs(count: int, node_label: str, current: Settings) -> PromptTally:
    """Count ``count`` jobs against this prompt's cap, or refuse before anything is submitted."""
    t = tally()
    with _tally_lock:
        err = _cap_error(t, count, node_label, current)
        if err is None:
            t.reserved += count
    if err is not None:
        raise err
    return t


def record(t: PromptTally, *, submitted: dict[str, int] | None = None, succeeded: int = 0, failed: int = 0,
           reused: int = 0, dry_run: int = 0) -> None:
    with _tally_lock:
        for kind, n in (submitted or {}).items():
            t.submitted[kind] = t.submitted.get(kind, 0) + n
        t.succeeded += succeeded
        t.failed += failed
        t.reused += reused
        t.dry_run += dry_run


# --- waiting with progress ----------------------------------------------------------------------


class ProgressView:
    """Turns per-job progress into ComfyUI's bar and a status line on the node."""

    TEXT_EVERY = 0.5

    def __init__(self, node_id: str | None, label: str, job_ids: list[str]) -> None:
        self.progress = comfy.NodeProgress(node_id)
        self.label = label
        self.job_ids = job_ids
        self.fractions = [0.0] * len(job_ids)
        self.statuses = ["queued"] * len(job_ids)
        self._last_text = 0.0
        self._lock = threading.Lock()

    def __call__(self, index: int, job: Job, elapsed: float) -> None:
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
            self.progress.text(self.describe(elapsed, overall))

    def describe(self, elapsed: float, overall: float) -> str:
        n = len(self.job_ids)
        if n == 1:
            return (f"{self.label}: job {self.job_ids[0]} {self.statuses[0]} · {overall * 100:.0f}% · "
                    f"{elapsed:.0f} s")
        done = sum(s == "succeeded" for s in self.statuses)
        running = sum(s == "running" for s in self.statuses)
        return f"{self.label}: {done}/{n} done, {running} running · {overall * 100:.0f}% · {elapsed:.0f} s"

    def text(self, message: str) -> None:
        self.progress.text(message)


def wait_jobs(client: ThreeDLabsClient, job_ids: list[str], *, node_id: str | None, label: str,
              timeout: float, created_at: list[float] | None = None, raise_on_failure: bool = True,
              on_done: Callable[[Job], None] | None = None) -> list:
    """Wait with ComfyUI's progress bar and Cancel; ``on_done`` gets each job as it succeeds."""
    view = ProgressView(node_id, label, job_ids)
    view.text(f"{label}: waiting for {len(job_ids)} job{'s' if len(job_ids) != 1 else ''}")

    def progress(index: int, job: Job, elapsed: float) -> None:
        view(index, job, elapsed)
        if on_done is not None and job.status == "succeeded":
            on_done(job)

    return client.wait(job_ids, timeout=timeout, cancel_check=comfy.check_interrupt, on_progress=progress,
                       created_at=created_at, raise_on_failure=raise_on_failure)


def finish_text(node_id: str | None, t: PromptTally, extra: str = "") -> str:
    line = t.line()
    text = sandbox_mark(settings()) + (f"{extra}\n{line}" if extra else line)
    comfy.NodeProgress(node_id, total=1).text(text)
    log.info("%s", text.replace("\n", " | "))
    return text
