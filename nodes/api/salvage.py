"""Reading back the job records a damaged journal database still holds (for ``journal``).

The damaged file is never written to: it is read on a copy (with its -wal), whose header is made
readable first (a file cut short still claims its old page count; an overwritten header is replaced by
a fresh one of this SQLite's), then row by row, so that a damaged page costs only the rows on it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

MAGIC = b"SQLite format 3\x00"
# Queries that say which rows there were: the last one, the table's own order, and each index (every
# index holds row ids, on pages of its own).
_ROW_IDS = ("SELECT max(seq) FROM jobs", "SELECT seq FROM jobs NOT INDEXED",
            "SELECT seq FROM jobs INDEXED BY jobs_by_request", "SELECT seq FROM jobs INDEXED BY jobs_by_time")


def records(bad: Path) -> list[dict]:
    """Every job record still readable in the database ``bad``, in the journal's order; [] when none is."""
    found: dict[int, dict] = {}
    with contextlib.suppress(sqlite3.Error, OSError), tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.sqlite3"
        data = bytearray(bad.read_bytes())
        wal = Path(f"{bad}-wal")
        if wal.is_file() and wal.stat().st_size:
            shutil.copyfile(wal, f"{copy}-wal")
        _mend_header(data, _fresh_header(Path(tmp) / "fresh.sqlite3"), wal=Path(f"{copy}-wal").exists())
        copy.write_bytes(data)
        with contextlib.closing(sqlite3.connect(copy)) as old:
            seqs: set[int] = set()
            for sql in _ROW_IDS:
                with contextlib.suppress(sqlite3.Error):  # a damaged page ends a scan: what came before counts
                    seqs.update(seq for (seq,) in old.execute(sql) if isinstance(seq, int))
            for seq in range(1, max(seqs, default=0) + 1):
                with contextlib.suppress(sqlite3.Error, ValueError, TypeError):
                    rec = json.loads(old.execute("SELECT record FROM jobs WHERE seq = ?", (seq,)).fetchone()[0])
                    if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                        found[seq] = rec
    return [found[seq] for seq in sorted(found)]


def _fresh_header(path: Path) -> bytes:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    return path.read_bytes()[:100]


def _mend_header(data: bytearray, fresh: bytes, *, wal: bool) -> None:
    if data[:16] != MAGIC:  # the journal's own pages are of SQLite's default size, as the fresh header says
        data[:100] = fresh
        if wal:
            data[18:20] = b"\x02\x02"  # WAL mode: the copied -wal is read
    size = int.from_bytes(data[16:18], "big")
    page = 65536 if size == 1 else size
    if page >= 512 and not page & (page - 1):
        data[28:32] = (len(data) // page).to_bytes(4, "big")  # the pages the file really has
