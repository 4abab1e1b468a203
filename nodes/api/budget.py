"""The spend budget across prompts: 3DLabs jobs per rolling hour and per rolling day, from the journal.

The per-prompt cap (``nodes/spend.py``) bounds one prompt; nothing bounded many. ComfyUI's own /prompt
accepts prompts from any page that reaches it (its origin check only runs for loopback Host names), so
a page could queue prompt after prompt. Every job-creating POST is journaled before its answer is read,
so the journal knows what was paid in the last hour and day; a node that would pass either limit is
refused before it submits anything. Jobs this process is about to submit (held, not yet journaled)
count too, so concurrent nodes cannot both slip under the limit. Dry runs and reused jobs cost nothing
and are not counted. Across processes sharing a user directory the count is the journal's, read at the
moment each node reserves (a race of two reservations can pass the limit by the smaller one).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from .errors import SpendBudgetError
from .journal import Journal

log = logging.getLogger("3dlabs")
HOUR, DAY = 3600.0, 86400.0
COUNT_SQL = "SELECT COUNT(*) FROM jobs WHERE sort_time >= ?"

_lock = threading.Lock()
_held: dict[int, int] = {}  # id(Hold) -> jobs reserved by this process and not yet journaled
WINDOWS = (("hour", HOUR, "THREEDLABS_MAX_JOBS_PER_HOUR", "Max jobs per hour"),
           ("day", DAY, "THREEDLABS_MAX_JOBS_PER_DAY", "Max jobs per day"))


class Hold:
    """Jobs reserved against the budget until their POSTs are journaled; release once they are."""

    def release(self) -> None:
        with _lock:
            _held.pop(id(self), None)


def spent(journal: Journal, window: float, now: float | None = None) -> int:
    """Jobs journaled as submitted within the last ``window`` seconds (any outcome: each was paid)."""
    since = (time.time() if now is None else now) - window
    try:
        return int(journal.transaction(lambda conn: conn.execute(COUNT_SQL, (since,)).fetchone()[0]))
    except (sqlite3.Error, OSError) as err:
        # Bookkeeping never stops paid work; the jobs held in this process still count.
        log.warning("3DLabs: the journal could not be read for the spend budget (%s); counting this process only", err)
        return 0


def usage(journal: Journal, limits: dict[str, int]) -> dict:
    """For the settings panel: per window, the limit, the jobs spent in it and what is left."""
    with _lock:
        held = sum(_held.values())
    out = {}
    for name, window, _, _ in WINDOWS:
        used = spent(journal, window) + held
        out[name] = {"limit": limits[name], "used": used, "left": max(0, limits[name] - used)}
    return out


def reserve(journal: Journal, count: int, limits: dict[str, int], node_label: str) -> Hold:
    """Hold ``count`` jobs against both windows, or raise SpendBudgetError before anything is submitted."""
    hold = Hold()
    if count <= 0:
        return hold
    with _lock:  # counted and held in one step: two nodes of one prompt cannot both pass on the same count
        held = sum(_held.values())
        for name, window, env, setting in WINDOWS:
            used = spent(journal, window) + held
            if used + count > limits[name]:
                raise SpendBudgetError(
                    f"{node_label} would submit {count} job{'s' if count != 1 else ''}, but {used} of the "
                    f"{limits[name]} jobs allowed per {name} were already submitted in the last {name}; it "
                    "submitted none of them",
                    hint=f"If that is you, raise the budget: set {env}, or '{setting}' in ComfyUI's settings "
                         "(3DLabs section). If it is not, something is queueing prompts: see docs/security.md.")
        _held[id(hold)] = count
    return hold
