"""The local record of every job id, so that nothing paid for is ever lost.

An append-only JSONL file in the pack's user directory. A job's id is written the moment it is
known (id, kind, time, a hash of the request, profile and workspace; never the token, never the
request body), and its final state once known. After a crash, a timeout or a closed ComfyUI, the
result can be collected by id (Job Wait). Writing the journal can never break a generation: every
failure is logged and swallowed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from . import config
from .errors import redact

log = logging.getLogger("3dlabs")

JOURNAL_FILENAME = "jobs.jsonl"
# States of a job that was paid for but whose end was never seen: it may still be running.
UNFINISHED_STATES = ("submitted", "timed-out", "unknown")
_lock = threading.Lock()


def request_hash(endpoint: str, body: dict) -> str:
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class Journal:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self._path = Path(path) if path else None
        # The merged records of the file as last read, keyed by what identifies that version of it: the
        # journal only grows, and a node may look up many ids or keys in one run.
        self._parsed: tuple[tuple, OrderedDict[str, dict]] | None = None

    @property
    def path(self) -> Path:
        return self._path or (config.user_dir() / JOURNAL_FILENAME)

    def _append(self, entry: dict) -> None:
        try:
            line = redact(json.dumps(entry, sort_keys=True, default=str)) + "\n"
            path = self.path
            with _lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                finally:
                    os.close(fd)
        except Exception as exc:  # noqa: BLE001  bookkeeping must never break a generation
            log.warning("3DLabs: could not write the job journal (%s: %s)", type(exc).__name__, exc)

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

    def entries(self) -> list[dict]:
        """Every readable line; broken lines (a crash mid-write) are skipped."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("3DLabs: could not read the job journal (%s)", exc)
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                out.append(entry)
        return out

    def jobs(self) -> OrderedDict[str, dict]:
        """One merged record per job id, oldest first: submission fields plus the latest state.

        The file is parsed again only when it has changed; each call gets its own copies of the records.
        """
        return OrderedDict((job_id, dict(rec)) for job_id, rec in self._records().items())

    def _records(self) -> OrderedDict[str, dict]:
        """The merged records as last parsed (shared: copy what leaves this class)."""
        try:
            st = os.stat(self.path)
            version = (str(self.path), st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            version = None
        parsed = self._parsed
        if version is None or parsed is None or parsed[0] != version:
            parsed = (version, self._merge())
            if version is not None:
                self._parsed = parsed
        return parsed[1]

    def _merge(self) -> OrderedDict[str, dict]:
        merged: OrderedDict[str, dict] = OrderedDict()
        for entry in self.entries():
            rec = merged.setdefault(entry["id"], {"id": entry["id"], "state": "submitted"})
            if entry.get("event") == "submitted":
                rec.update({k: v for k, v in entry.items() if k not in ("event",)})
                rec.setdefault("state", "submitted")
                rec["submitted_at"] = entry.get("time")
            elif entry.get("event") == "state":
                rec["state"] = entry.get("state", rec.get("state"))
                rec["updated_at"] = entry.get("time")
                if entry.get("error"):
                    rec["error"] = entry["error"]
        return merged

    def recent(self, limit: int = 20) -> list[dict]:
        jobs = list(self.jobs().values())
        jobs.sort(key=lambda r: r.get("submitted_at") or r.get("updated_at") or 0, reverse=True)
        return jobs[: max(0, limit)]

    def find(self, job_id: str) -> dict | None:
        rec = self._records().get(job_id)
        return dict(rec) if rec is not None else None

    def find_paid(self, request: str, *, base_url: str, workspace: str | None, unfinished: bool = True) -> dict | None:
        """The newest succeeded job made by the same request (same API and workspace); failing that,
        with ``unfinished``, the newest one whose end nobody saw (a crash, Cancel, a timeout, polling
        that kept failing), so that queueing again waits for it instead of paying for it twice."""
        pending = None
        for rec in reversed(self._records().values()):
            if (rec.get("request") != request or rec.get("base_url") != base_url
                    or rec.get("workspace") != workspace or rec["id"].startswith("unknown-")):
                continue
            if rec.get("state") == "succeeded":
                return dict(rec)
            if unfinished and pending is None and rec.get("state") in UNFINISHED_STATES:
                pending = rec
        return dict(pending) if pending is not None else None
