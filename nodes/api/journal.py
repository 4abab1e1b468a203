"""The local record of every job id, so that nothing paid for is ever lost or paid for twice.

A job's id is recorded the moment it is known (id, kind, time, a hash of the request, profile,
workspace, API; never the token, never the request body), and its final state once known. After a
crash, a timeout or a closed ComfyUI, the result can be collected by id (Job Wait), and queueing the
same request again reuses it (``find_paid``).

The records live in a SQLite database in the pack's user directory (``jobs.sqlite3``, mode 0600;
``journal_store.py`` owns the file): lookups by job id and by request key are indexed, settled jobs
older than THREEDLABS_JOURNAL_DAYS (default 30; 0 keeps everything) are pruned, and the old
JSON-lines journal (``jobs.jsonl``) is imported once and renamed ``jobs.jsonl.migrated``. Writing
the journal can never break a generation: every failure is logged (with the job id that was not
recorded) and swallowed; a failed read answers "nothing recorded".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from . import config
from .errors import redact
from .journal_store import SETTLED_STATES, Store

log = logging.getLogger("3dlabs")

JOURNAL_FILENAME = "jobs.sqlite3"
LEGACY_FILENAME = "jobs.jsonl"  # the JSON-lines journal of earlier versions: imported, then renamed
# States of a job that was paid for but whose end was never seen: it may still be running.
UNFINISHED_STATES = ("submitted", "timed-out", "unknown")
__all__ = ["Journal", "request_hash", "UNFINISHED_STATES", "SETTLED_STATES", "JOURNAL_FILENAME"]

# The lookups, named so that a test can ask SQLite whether they use an index.
FIND_SQL = "SELECT record FROM jobs WHERE id = ?"
BY_REQUEST_SQL = "SELECT record FROM jobs WHERE request = ? ORDER BY seq DESC"
RECENT_SQL = "SELECT record FROM jobs ORDER BY sort_time DESC, seq ASC LIMIT ?"
ALL_SQL = "SELECT record FROM jobs ORDER BY seq"
# Never redacted: a job id must stay collectable even when it looks like a key, and the request key
# is a hash that lookups compare exactly.
_KEPT_AS_IS = ("id", "request")


def request_hash(endpoint: str, body: dict) -> str:
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def merge(rec: dict | None, event: dict) -> dict:
    """A job's record after one more event (the old file's reader, one line at a time)."""
    rec = dict(rec) if rec else {"id": event["id"], "state": "submitted"}
    if event.get("event") == "submitted":
        rec.update({k: v for k, v in event.items() if k != "event"})
        rec.setdefault("state", "submitted")
        rec["submitted_at"] = event.get("time")
    elif event.get("event") == "state":
        rec["state"] = event.get("state", rec.get("state"))
        rec["updated_at"] = event.get("time")
        if event.get("error"):
            rec["error"] = event["error"]
    return rec


def _scrub(event: dict) -> dict:
    """The event with anything token-shaped masked in its free text (labels, errors, URLs)."""
    out = {}
    for key, value in event.items():
        if key in _KEPT_AS_IS or value is None or isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, str):
            out[key] = redact(value)
        else:  # nested values only come from hand-edited old files: kept as redacted text
            out[key] = redact(json.dumps(value, sort_keys=True, default=str))
    return out


class Journal:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self._path = Path(path) if path else None
        self._store: Store | None = None

    @property
    def path(self) -> Path:
        """The database file. A ``.jsonl`` path (the old format's name) puts it beside, as ``.sqlite3``."""
        path = self._path or (config.user_dir() / JOURNAL_FILENAME)
        return path.with_suffix(".sqlite3") if path.suffix == ".jsonl" else path

    @property
    def legacy_path(self) -> Path:
        """Where an old JSON-lines journal would be: imported whenever one is found there."""
        path = self.path
        return path.with_name(LEGACY_FILENAME) if self._path is None else path.with_suffix(".jsonl")

    def _current(self) -> Store:
        # The default path follows the user directory, which ComfyUI may set after this was made.
        path = self.path
        store = self._store
        if store is None or store.path != path:
            if store is not None:
                store.close()
            store = self._store = Store(path, self.legacy_path, merge)
        return store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # --- writing -------------------------------------------------------------------------------

    def _append(self, event: dict) -> None:
        try:
            event = _scrub(event)
            store = self._current()
            store.run(lambda conn: store.apply(conn, event), write=True)
        except Exception as exc:  # noqa: BLE001  bookkeeping must never break a generation
            log.warning("3DLabs: could not write the job journal (%s: %s); job %s was NOT recorded "
                        "(%s): keep its id to collect it with 3DLabs Job Wait", type(exc).__name__, exc,
                        event.get("id"), event.get("state") or event.get("event"))

    def record_submitted(self, job_id: str, kind: str, *, endpoint: str = "", body: dict | None = None,
                         profile: str = "", workspace: str | None = None, base_url: str = "",
                         label: str = "", request_key: str | None = None) -> None:
        self._append({
            "event": "submitted", "id": job_id, "kind": kind, "time": time.time(),
            "request": request_key or request_hash(endpoint, body or {}), "profile": profile, "workspace": workspace,
            "base_url": base_url, "label": label[:120],
        })

    def record_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        entry = {"event": "state", "id": job_id, "state": state, "time": time.time()}
        if error:
            entry["error"] = error[:500]
        self._append(entry)

    # --- reading -------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple) -> list[dict]:
        """The records ``sql`` selects; none when there is no journal yet or it cannot be read."""
        try:
            store = self._current()
            if not store.exists():  # reading never creates the file
                return []
            return store.run(lambda conn: store.records(conn.execute(sql, params)))
        except Exception as exc:  # noqa: BLE001  a journal that cannot be read holds nothing usable
            log.warning("3DLabs: could not read the job journal (%s: %s)", type(exc).__name__, exc)
            return []

    def jobs(self) -> OrderedDict[str, dict]:
        """One merged record per job id, oldest first: submission fields plus the latest state.

        Each call gets its own copies of the records.
        """
        return OrderedDict((rec["id"], rec) for rec in self._read(ALL_SQL, ()))

    def entries(self) -> list[dict]:
        """The journal as events (what the old file's lines were): per job, its submission, then its
        latest state when one was seen. Kept for callers of the old format; prefer ``jobs()``."""
        out = []
        for rec in self.jobs().values():
            fields = {k: v for k, v in rec.items() if k not in ("state", "submitted_at", "updated_at", "error")}
            if "submitted_at" in rec:
                out.append({"event": "submitted", **fields, "time": rec["submitted_at"]})
            if "updated_at" in rec:
                state = {"event": "state", "id": rec["id"], "state": rec.get("state"), "time": rec["updated_at"]}
                if rec.get("error"):
                    state["error"] = rec["error"]
                out.append(state)
        return out

    def recent(self, limit: int = 20) -> list[dict]:
        """The newest ``limit`` jobs, newest first (by submission time, else by last update)."""
        if limit <= 0:
            return []
        return self._read(RECENT_SQL, (int(limit),))

    def find(self, job_id: str) -> dict | None:
        found = self._read(FIND_SQL, (job_id,))
        return found[0] if found else None

    def find_paid(self, request: str, *, base_url: str, workspace: str | None, unfinished: bool = True) -> dict | None:
        """The newest succeeded job made by the same request (same API and workspace); failing that,
        with ``unfinished``, the newest one whose end nobody saw (a crash, Cancel, a timeout, polling
        that kept failing), so that queueing again waits for it instead of paying for it twice."""
        pending = None
        for rec in self._read(BY_REQUEST_SQL, (request,)):
            if (rec.get("request") != request or rec.get("base_url") != base_url
                    or rec.get("workspace") != workspace or rec["id"].startswith("unknown-")):
                continue
            if rec.get("state") == "succeeded":
                return rec
            if unfinished and pending is None and rec.get("state") in UNFINISHED_STATES:
                pending = rec
        return pending
