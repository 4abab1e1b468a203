"""The local record of every job id, so that nothing paid for is ever lost or paid for twice.

A job's id is recorded the moment it is known (id, kind, time, a hash of the request, profile, workspace,
API; never the token, never the request body), and its final state once known. After a crash, a timeout
or a closed ComfyUI, the result can be collected by id (Job Wait), and queueing the same request again
reuses it (``find_paid``); table ``claims`` (version 2) holds each request key's POSTs for ``inflight``. Writing
can never break a generation: a failure is logged (with the job id not recorded) and swallowed; a failed read
answers "nothing recorded".

The records live in SQLite (``jobs.sqlite3`` in the pack's user directory, mode 0600), safe across
processes, one merged record per job id. Settled jobs older than THREEDLABS_JOURNAL_DAYS (default 30;
0 keeps everything) are pruned. A damaged database is moved aside, untouched, and replaced by one holding
every record still readable in it (``salvage``); Recent Jobs says so (``damage_note``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from . import config, config_store, salvage
from .redaction import redact

log = logging.getLogger("3dlabs")

UNFINISHED_STATES = ("submitted", "timed-out", "unknown")  # paid, its end never seen: it may still run
# Nothing more can come of these, so they may be pruned once old. Every other state (including anything
# unexpected) may hold a paid result and is kept.
SETTLED_STATES = ("succeeded", "failed", "gone", "canceled")
MAYBE_SUBMITTED = "maybe-submitted"  # record_submitted(lost=why): the answer was lost, the job's id is made up
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,        -- order of first appearance
    id TEXT NOT NULL UNIQUE,
    request TEXT,
    state TEXT,
    sort_time REAL NOT NULL DEFAULT 0,  -- submitted_at, else updated_at: what recent() orders by
    touched REAL NOT NULL DEFAULT 0,    -- the latest event: what pruning ages by
    record TEXT NOT NULL                -- the merged record, as JSON
);
CREATE INDEX IF NOT EXISTS jobs_by_request ON jobs(request);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(sort_time DESC);  -- then seq ascending, as recent() wants
CREATE INDEX IF NOT EXISTS jobs_by_state_age ON jobs(state, touched);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS claims (request TEXT PRIMARY KEY, attempt INTEGER NOT NULL DEFAULT 0, token TEXT,
    owner_pid INTEGER, owner_host TEXT, claimed_at REAL NOT NULL DEFAULT 0, expires_at REAL NOT NULL DEFAULT 0);
"""
# The lookups, named so that a test can ask SQLite whether they use an index.
FIND_SQL = "SELECT record FROM jobs WHERE id = ?"
BY_REQUEST_SQL = "SELECT record FROM jobs WHERE request = ? ORDER BY seq DESC"
RECENT_SQL = "SELECT record FROM jobs ORDER BY sort_time DESC, seq ASC LIMIT ?"

# When each database was last pruned by this process (path -> time.time()).
_pruned_at: dict[str, float] = {}
_pruned_lock = threading.Lock()
# Connections inherited through fork() must be neither used nor closed by the child: parked here.
_inherited: list[sqlite3.Connection] = []


def request_hash(endpoint: str, body: dict) -> str:
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def retention_seconds() -> float | None:
    """The retention from THREEDLABS_JOURNAL_DAYS (default 30 days); None (never prune) for 0 or less."""
    raw = os.environ.get("THREEDLABS_JOURNAL_DAYS", "").strip() or "30"
    try:
        days = float(raw)
    except ValueError:
        log.warning("3DLabs: THREEDLABS_JOURNAL_DAYS=%r is not a number of days; keeping settled jobs 30 days", raw)
        days = 30.0
    return days * 86400.0 if days > 0 else None


def _scrub(event: dict) -> dict:
    """The event with anything token-shaped masked in its free text (labels, errors, URLs)."""
    out = {}
    for key, value in event.items():
        # Never redacted: a job id must stay collectable even when it looks like a key, and the request
        # key is a hash that lookups compare exactly.
        if key in ("id", "request") or value is None or isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, str):
            out[key] = redact(value)
        else:  # no writer here passes one; should one, it is kept as redacted text
            out[key] = redact(json.dumps(value, sort_keys=True, default=str))
    return out


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _apply(conn: sqlite3.Connection, event: dict) -> None:
    """Merge one event (a submission or a state) into its job's record, in a write transaction."""
    row = conn.execute("SELECT seq, record FROM jobs WHERE id = ?", (event["id"],)).fetchone()
    rec = json.loads(row[1]) if row else {"id": event["id"], "state": "submitted"}
    if event.get("event") == "submitted":
        rec.update({k: v for k, v in event.items() if k != "event"})
        rec.setdefault("state", "submitted")
        rec["submitted_at"] = event.get("time")
    elif event.get("event") == "state":
        rec["state"] = event.get("state", rec.get("state"))
        rec["updated_at"] = event.get("time")
        if event.get("error"):
            rec["error"] = event["error"]
    # An existing row keeps its seq (a new one takes the next): the job's place in the history.
    _store(conn, rec, row[0] if row else None)


def _store(conn: sqlite3.Connection, rec: dict, seq: int | None) -> None:
    submitted, updated = _number(rec.get("submitted_at")), _number(rec.get("updated_at"))
    request, state = (v if isinstance(v, str) else None for v in (rec.get("request"), rec.get("state")))
    values = (seq, rec["id"], request, state, submitted or updated, max(submitted, updated),
              json.dumps(rec, sort_keys=True, default=str))
    conn.execute("INSERT OR REPLACE INTO jobs (seq, id, request, state, sort_time, touched, record) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", values)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT: the write lock is taken first, so read-merge-write cannot interleave
    with another process's (a deferred transaction would fail to upgrade instead of waiting)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:  # an error, or a COMMIT that failed: leave nothing half-done
            conn.execute("ROLLBACK")


def _is_corruption(exc: BaseException) -> bool:
    """A damaged file or one that is not a database, as opposed to a lock, a full disk or a permission."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    return "not a database" in str(exc).lower() or "malformed" in str(exc).lower()


def _damage_words(note: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(_number(note.get("at"))))
    return (f"The job journal was damaged ({note.get('why')}) and was replaced on {when}: "
            f"{note.get('read_back')} job(s) could be read back from it. It is kept, untouched, as "
            f"{note.get('kept')}; a paid job it held that could not be read is missing here (collect it by "
            "id with Job Wait; queueing its inputs again would pay for it again).")


class Journal:
    """The journal: one connection per process, shared by threads under a lock."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._db = Path()  # the file the open connection belongs to
        self._pid = os.getpid()

    @property
    def path(self) -> Path:
        return self._path or (config.user_dir() / "jobs.sqlite3")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid != os.getpid():
                _inherited.append(self._conn)
            elif self._conn is not None:
                self._conn.close()
            self._conn = None

    def _connect(self, *, check: bool = False) -> sqlite3.Connection:
        self._db.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self._db, os.O_RDWR | os.O_CREAT, 0o600))
        # A write waits this long for another process's transaction before giving up (and logging).
        conn = sqlite3.connect(str(self._db), timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:  # some network filesystems have no shared memory
                log.debug("3DLabs: journal stays in rollback mode (%s)", exc)
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                with _transaction(conn):  # only a new file is written to just by opening it
                    for statement in _SCHEMA.split(";"):  # not executescript(): it would COMMIT first
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if check:  # a whole-file scan: only when damage was seen, never on every open
                result = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed ({result})")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        """The connection, opened on first use, after a fork, and when the default path moved (ComfyUI
        may set the user directory after this journal was made)."""
        path, pid = self.path, os.getpid()
        if self._conn is None or (self._db, self._pid) != (path, pid):
            self.close()
            self._db, self._pid = path, pid
            self._conn = self._connect()
            self._prune_if_due(self._conn)
        return self._conn

    def _replace_corrupt(self, exc: BaseException) -> None:
        """Move a damaged database (and its -wal) aside as ``<name>.corrupt``, kept as it is, and start a new
        one holding every job record still readable in it and a note for Recent Jobs (``damage_note``)."""
        try:  # another process may have replaced it already: never move a good file aside
            self._connect(check=True).close()
            return
        except sqlite3.DatabaseError as again:
            if not _is_corruption(again):
                raise
        bad = config_store.free_name(self._db, ".corrupt")
        os.replace(self._db, bad)
        # Its -wal belongs to the damaged file (kept beside it); -shm is only a shared-memory index.
        if os.path.exists(f"{self._db}-wal"):
            os.replace(f"{self._db}-wal", f"{bad}-wal")
        Path(f"{self._db}-shm").unlink(missing_ok=True)
        records = salvage.records(bad)
        note = {"at": time.time(), "why": str(exc)[:200], "kept": str(bad), "read_back": len(records)}
        with contextlib.closing(self._connect()) as conn, _transaction(conn):
            for rec in records:
                _store(conn, rec, None)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('replaced', ?)", (json.dumps(note),))
        log.warning("3DLabs: %s", _damage_words(note))

    def _run(self, fn: Callable[[sqlite3.Connection], object], *, write: bool = False):
        """``fn(conn)`` under the lock (in a write transaction if ``write``); a database found damaged (on
        opening, or mid-way) is replaced once and ``fn`` retried."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._open()
                    if not write:
                        return fn(conn)
                    with _transaction(conn):
                        out = fn(conn)
                    self._touch()
                    return out
                except sqlite3.DatabaseError as exc:
                    if attempt == 2 or not _is_corruption(exc):
                        raise
                    self.close()
                    self._replace_corrupt(exc)

    def _touch(self) -> None:
        # In WAL mode a commit lands in the -wal file; whoever watches the database file's mtime
        # (Recent Jobs re-runs when it changes) must still see every write.
        with contextlib.suppress(OSError):
            os.utime(self._db)

    def _prune_if_due(self, conn: sqlite3.Connection) -> None:
        """Delete settled records older than the retention: on opening, at most once a day per process."""
        keep = retention_seconds()
        now = time.time()
        with _pruned_lock:
            if keep is None or now - _pruned_at.get(str(self._db), 0.0) < 86400.0:
                return
            _pruned_at[str(self._db)] = now
        try:
            marks = ",".join("?" * len(SETTLED_STATES))
            with _transaction(conn):
                cur = conn.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND touched < ?",
                                   (*SETTLED_STATES, now - keep))
                conn.execute("DELETE FROM claims WHERE token IS NULL AND claimed_at < ?", (now - keep,))
            if cur.rowcount:
                log.info("3DLabs: pruned %d settled jobs older than the journal's retention", cur.rowcount)
                self._touch()
        except sqlite3.Error as exc:  # pruning is housekeeping: try again next time
            _pruned_at.pop(str(self._db), None)
            log.warning("3DLabs: could not prune the job journal (%s)", exc)

    def _append(self, event: dict) -> None:
        try:
            event = _scrub(event)
            self._run(lambda conn: _apply(conn, event), write=True)
        except Exception as exc:  # noqa: BLE001  bookkeeping must never break a generation
            log.warning("3DLabs: could not write the job journal (%s: %s); job %s was NOT recorded "
                        "(%s): keep its id to collect it with 3DLabs Job Wait", type(exc).__name__, exc,
                        event.get("id"), event.get("state") or event.get("event"))

    def record_submitted(self, job_id: str, kind: str, *, endpoint: str = "", body: dict | None = None,
                         profile: str = "", workspace: str | None = None, base_url: str = "",
                         label: str = "", request_key: str | None = None, lost: str | None = None) -> None:
        self._append({
            "event": "submitted", "id": job_id, "kind": kind, "time": time.time(),
            "request": request_key or request_hash(endpoint, body or {}), "profile": profile, "workspace": workspace,
            "base_url": base_url, "label": label[:120],
            **({"state": MAYBE_SUBMITTED, "error": lost[:500]} if lost else {}),
        })

    def transaction(self, fn: Callable[[sqlite3.Connection], object]):
        """``fn(conn)`` in one BEGIN IMMEDIATE transaction; raises what SQLite raises (claims decide on it)."""
        return self._run(fn, write=True)

    def record_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        self._append({"event": "state", "id": job_id, "state": state, "time": time.time(),
                      **({"error": error[:500]} if error else {})})

    def _read(self, sql: str, params: tuple) -> list[dict]:
        """The records ``sql`` selects; none when there is no journal yet or it cannot be read."""
        try:
            if not self.path.exists():  # reading never creates the file
                return []
            rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        except Exception as exc:  # noqa: BLE001  a journal that cannot be read holds nothing usable
            log.warning("3DLabs: could not read the job journal (%s: %s)", type(exc).__name__, exc)
            return []
        out = []
        for (text,) in rows:
            try:
                out.append(json.loads(text))
            except ValueError:  # a row damaged by hand: skipped
                continue
        return out

    def damage_note(self) -> str | None:
        """What the user must know when this journal replaced a damaged one, for the retention's time."""
        found = self._read("SELECT value FROM meta WHERE key = 'replaced'", ())
        keep = retention_seconds()
        if not found or (keep is not None and time.time() - _number(found[0].get("at")) > keep):
            return None
        return _damage_words(found[0])

    def jobs(self) -> OrderedDict[str, dict]:
        """One merged record per job id, oldest first: submission fields plus the latest state (copies)."""
        return OrderedDict((rec["id"], rec) for rec in self._read("SELECT record FROM jobs ORDER BY seq", ()))

    def recent(self, limit: int = 20) -> list[dict]:
        """The newest ``limit`` jobs, newest first (by submission time, else by last update)."""
        return self._read(RECENT_SQL, (int(limit),)) if limit > 0 else []

    def by_request(self, request: str) -> list[dict]:
        """Every record made by one request key, newest first."""
        return self._read(BY_REQUEST_SQL, (request,))

    def find(self, job_id: str) -> dict | None:
        found = self._read(FIND_SQL, (job_id,))
        return found[0] if found else None

    def find_paid(self, request: str, *, base_url: str, workspace: str | None, unfinished: bool = True) -> dict | None:
        """The newest succeeded job made by the same request (same API and workspace); failing that,
        with ``unfinished``, the newest one whose end nobody saw (a crash, Cancel, a timeout, polling
        that kept failing), so that queueing again waits for it instead of paying for it twice."""
        pending = None
        for rec in self._read(BY_REQUEST_SQL, (request,)):
            if rec.get("base_url") != base_url or rec.get("workspace") != workspace or rec["id"].startswith("unknown-"):
                continue
            if rec.get("state") == "succeeded":
                return rec
            if unfinished and pending is None and rec.get("state") in UNFINISHED_STATES:
                pending = rec
        return pending
