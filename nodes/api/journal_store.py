"""The SQLite file under the job journal: opening, schema, recovery, migration and pruning.

``journal.py`` owns what a record means; this module owns how records sit on disk. One table holds
one merged record per job id (indexed by id, by request key, by recency and by state and age), so a
lookup never re-reads the whole history. SQLite gives transactions that are safe across processes
(two ComfyUI instances or a script sharing the user directory); WAL mode is used where the filesystem
allows it. Nothing here touches asyncio: each ComfyUI prompt runs under a fresh event loop.

Three kinds of repair:
- a file at the database's path that is not a database (found on opening it), or is damaged
  (found by a lookup, then confirmed with a quick check), is moved aside as
  ``<name>.corrupt`` (``.corrupt-<time>-<n>`` if taken) and a new one is created; if it held old-format JSON lines,
  those are imported first;
- the old JSON-lines journal (``jobs.jsonl``) beside it is imported (from where an earlier import
  stopped, should renaming have failed), then renamed to ``jobs.jsonl.migrated``. This is checked
  on every call (one stat), so lines an older version of the pack still appends are not lost;
- settled records older than the retention are deleted on opening, at most once a day per process.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("3dlabs")

SCHEMA_VERSION = 1
# How long a write waits for another process's transaction before giving up (and logging).
BUSY_TIMEOUT_SECONDS = 10.0
# Settled records: nothing more can come of them, so they may be pruned once old. Every other state
# (submitted, timed-out, unknown, anything unexpected) may hold a paid result and is kept.
SETTLED_STATES = ("succeeded", "failed", "gone", "canceled")
RETENTION_ENV = "THREEDLABS_JOURNAL_DAYS"
DEFAULT_RETENTION_DAYS = 30.0
PRUNE_EVERY_SECONDS = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,        -- order of first appearance (the old file's line order)
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
"""

# When each database was last pruned by this process (path -> time.time()).
_pruned_at: dict[str, float] = {}
_pruned_lock = threading.Lock()
# Connections inherited through fork() must be neither used nor closed by the child: parked here.
_inherited: list[sqlite3.Connection] = []


def is_corruption(exc: BaseException) -> bool:
    """A damaged file or one that is not a database, as opposed to a lock, a full disk or a permission."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def retention_seconds() -> float | None:
    """The retention from THREEDLABS_JOURNAL_DAYS (default 30 days); None (never prune) for 0 or less."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    days = DEFAULT_RETENTION_DAYS
    if raw:
        try:
            days = float(raw)
        except ValueError:
            log.warning("3DLabs: %s=%r is not a number of days; keeping settled jobs %g days",
                        RETENTION_ENV, raw, DEFAULT_RETENTION_DAYS)
    return days * 86400.0 if days > 0 else None


def read_json_lines(path: Path, start: int = 0) -> tuple[list[dict], int]:
    """The readable events of an old-format journal from byte ``start``, and where reading stopped.

    Broken lines (a crash mid-write, garbage) are skipped, and a last line without its newline is
    read if it parses, as the old reader did.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    events = []
    for line in data.splitlines():
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            events.append(entry)
    return events, start + len(data)


def _aside(path: Path, label: str) -> Path:
    """A free name beside ``path`` for a file being moved out of the way (never overwrite one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{label}")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{label}-{stamp}-{n}")
    return target


class Store:
    """One database file: a connection per process, shared by threads under a lock."""

    def __init__(self, path: Path, legacy: Path, merge: Callable[[dict | None, dict], dict]) -> None:
        self.path = path
        self.legacy = legacy
        self._merge = merge  # (stored record or None, event) -> new record; owned by journal.py
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    # --- connection ----------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists() or self.legacy.exists()

    def _connect(self, *, check: bool = False) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:  # some network filesystems have no shared memory
                log.debug("3DLabs: journal stays in rollback mode (%s)", exc)
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                with self._transaction(conn):  # only a new file is written to just by opening it
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
        """The connection, opened (and the file repaired) on first use and after a fork."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn, self._pid = None, os.getpid()
        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            conn = self._replace_corrupt(exc)
        self._conn = conn
        self._prune_if_due(conn)
        return conn

    def _replace_corrupt(self, exc: BaseException) -> sqlite3.Connection:
        try:  # another process may have replaced it already: never move a good file aside
            return self._connect(check=True)
        except sqlite3.DatabaseError as again:
            if not is_corruption(again):
                raise
        bad = _aside(self.path, "corrupt")
        os.replace(self.path, bad)
        # Its -wal belongs to the damaged file (kept beside it); -shm is only a shared-memory index.
        for suffix, keep in (("-wal", True), ("-shm", False)):
            side = Path(str(self.path) + suffix)
            if side.exists() and keep:
                os.replace(side, Path(str(bad) + suffix))
            elif side.exists():
                side.unlink()
        log.warning("3DLabs: the job journal %s was damaged (%s); moved it to %s and started a new one",
                    self.path, exc, bad.name)
        conn = self._connect()
        try:  # a file of the old JSON-lines format written where the database belongs: keep its jobs
            events, _ = read_json_lines(bad)
        except OSError:
            events = []
        if events:
            with self._transaction(conn):
                self._apply_all(conn, events)
            log.warning("3DLabs: imported %d job journal lines from %s", len(events), bad.name)
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    @staticmethod
    def _transaction(conn: sqlite3.Connection):
        return _Transaction(conn)

    def run(self, fn: Callable[[sqlite3.Connection], object], *, write: bool = False):
        """``fn(conn)`` under the lock (in a write transaction if ``write``), after importing any
        old-format lines; a database found damaged mid-way is replaced once and ``fn`` retried."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._open()
                try:
                    self._import_legacy(conn)
                    if not write:
                        return fn(conn)
                    with self._transaction(conn):
                        out = fn(conn)
                    self._touch()
                    return out
                except sqlite3.DatabaseError as exc:
                    if attempt == 2 or not is_corruption(exc):
                        raise
                    self._conn = None
                    conn.close()
                    self._replace_corrupt(exc).close()
        raise AssertionError("unreachable")

    def _touch(self) -> None:
        # In WAL mode a commit lands in the -wal file; whoever watches the database file's mtime
        # (Recent Jobs re-runs when it changes) must still see every write.
        try:
            os.utime(self.path)
        except OSError:
            pass

    # --- records -------------------------------------------------------------------------------

    def apply(self, conn: sqlite3.Connection, event: dict) -> None:
        """Merge one event into its job's record (inside a write transaction)."""
        row = conn.execute("SELECT record FROM jobs WHERE id = ?", (event["id"],)).fetchone()
        rec = self._merge(json.loads(row[0]) if row else None, event)
        sort_time = _number(rec.get("submitted_at")) or _number(rec.get("updated_at")) or 0.0
        touched = max(_number(rec.get("submitted_at")), _number(rec.get("updated_at")))
        values = (_text(rec.get("request")), _text(rec.get("state")), sort_time, touched,
                  json.dumps(rec, sort_keys=True, default=str))
        if row:
            conn.execute("UPDATE jobs SET request = ?, state = ?, sort_time = ?, touched = ?, record = ? "
                         "WHERE id = ?", (*values, rec["id"]))
        else:
            conn.execute("INSERT INTO jobs (request, state, sort_time, touched, record, id) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (*values, rec["id"]))

    def _apply_all(self, conn: sqlite3.Connection, events: list[dict]) -> None:
        for event in events:
            self.apply(conn, event)

    @staticmethod
    def records(rows: Iterator[tuple]) -> list[dict]:
        out = []
        for (text,) in rows:
            try:
                out.append(json.loads(text))
            except ValueError:  # a row damaged by hand: skipped, as a broken line was
                continue
        return out

    # --- migration and pruning -----------------------------------------------------------------

    def _import_legacy(self, conn: sqlite3.Connection) -> None:
        """Import the old JSON-lines journal if one is there (a first start after the upgrade, or an
        older version of the pack still writing it), then rename it aside. One stat when it is not."""
        try:
            st = os.stat(self.legacy)
        except OSError:
            return
        key = f"legacy:{st.st_dev}:{st.st_ino}"
        with self._transaction(conn):
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            start = int(row[0]) if row else 0
            if start > st.st_size:  # a different file under the same inode: read it all
                start = 0
            events, end = read_json_lines(self.legacy, start)
            self._apply_all(conn, events)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(end)))
        if events:
            log.info("3DLabs: imported %d job journal lines from %s", len(events), self.legacy.name)
        try:  # where renaming fails, the offset kept in meta stops these lines being imported again
            os.replace(self.legacy, _aside(self.legacy, "migrated"))
        except OSError as exc:  # a read-only folder, or another process renamed it first
            log.debug("3DLabs: could not rename the old job journal (%s)", exc)

    def _prune_if_due(self, conn: sqlite3.Connection) -> None:
        keep = retention_seconds()
        now = time.time()
        with _pruned_lock:
            if keep is None or now - _pruned_at.get(str(self.path), 0.0) < PRUNE_EVERY_SECONDS:
                return
            _pruned_at[str(self.path)] = now
        try:
            marks = ",".join("?" * len(SETTLED_STATES))
            with self._transaction(conn):
                cur = conn.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND touched < ?",
                                   (*SETTLED_STATES, now - keep))
            if cur.rowcount:
                log.info("3DLabs: pruned %d settled jobs older than the journal's retention", cur.rowcount)
                self._touch()
        except sqlite3.Error as exc:  # pruning is housekeeping: try again next time
            _pruned_at.pop(str(self.path), None)
            log.warning("3DLabs: could not prune the job journal (%s)", exc)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: the write lock is taken first, so read-merge-write cannot interleave
    with another process's (a deferred transaction would fail to upgrade instead of waiting)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.conn.execute("COMMIT")
        finally:
            if self.conn.in_transaction:  # an error, or a COMMIT that failed: leave nothing half-done
                self.conn.execute("ROLLBACK")


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
