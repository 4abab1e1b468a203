"""Spend control: the per-prompt tally of 3DLabs jobs, the job cap, and the summary line.

Each ComfyUI prompt gets one tally (keyed by its prompt id), so the cap counts every job the
prompt's nodes create, and each node's finish line reports the prompt's jobs so far.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from . import comfy
from .api.config import Settings
from .api.errors import JobCapError

_MAX_TALLIES = 32


@dataclass
class PromptTally:
    submitted: Counter[str] = field(default_factory=Counter)  # jobs submitted, per kind
    succeeded: int = 0
    failed: int = 0
    reused: int = 0
    dry_run: int = 0
    reserved: int = 0
    by_node: Counter[str] = field(default_factory=Counter)  # jobs submitted, per node label

    def line(self) -> str:
        dry = f"; dry run: {self.dry_run} not submitted" if self.dry_run else ""
        if self.reused and not self.submitted and not self.failed:
            # A re-run that only collected what was paid for before must not read like a new spend.
            return f"3DLabs jobs this prompt: no new job, nothing paid; reused {self.reused} paid before{dry}"
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.submitted.items())) or "none"
        return (f"3DLabs jobs this prompt: submitted {kinds}; succeeded {self.succeeded}, failed {self.failed}, "
                f"reused {self.reused}{dry}")


_tallies: OrderedDict[str, PromptTally] = OrderedDict()
_lock = threading.Lock()


def tally(prompt_key: str | None = None) -> PromptTally:
    key = prompt_key or comfy.executing_context()[0] or "outside-comfyui"
    with _lock:
        if key not in _tallies:
            _tallies[key] = PromptTally()
            while len(_tallies) > _MAX_TALLIES:
                _tallies.popitem(last=False)
        return _tallies[key]


def reset_tallies() -> None:
    with _lock:
        _tallies.clear()


def reserve(t: PromptTally, count: int, node_label: str, current: Settings, *, keep: bool = True) -> None:
    """Count ``count`` jobs against the prompt's cap, or refuse before anything is submitted.

    With ``keep`` off nothing is reserved: a check on a lower bound known before any request, so that
    a list far over the cap is refused before a lookup, a thread or an allocation.
    """
    with _lock:
        if t.reserved + count <= current.max_jobs:
            t.reserved += count if keep else 0
            return
        spent = ", ".join(f"{label} {n}" for label, n in t.by_node.items())
        reserved = t.reserved
    already = ""
    if reserved:
        already = (f". Other nodes of this prompt already took {reserved} of the cap"
                   + (f"; submitted and paid for: {spent}" if spent else ""))
    raise JobCapError(
        f"{node_label} would submit {count} job{'s' if count != 1 else ''}, over the cap of {current.max_jobs} "
        f"per prompt; it submitted none of them{already}",
        hint="If that is intended, raise the cap: set THREEDLABS_MAX_JOBS, or 'Max jobs per prompt' "
        "in ComfyUI's settings (3DLabs section).",
    )


def record(t: PromptTally, *, kind: str = "", submitted: int = 0, node: str = "", succeeded: int = 0,
           failed: int = 0, reused: int = 0, dry_run: int = 0) -> None:
    with _lock:
        if submitted:
            t.submitted[kind] += submitted
            t.by_node[node] += submitted
        t.succeeded += succeeded
        t.failed += failed
        t.reused += reused
        t.dry_run += dry_run
