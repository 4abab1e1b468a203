"""Persistence: workspaces, seeded projects, seeded images and jobs, in one SQLite database.

Without a data directory the database lives in memory; with one it is ``data_dir/sandbox.sqlite3``,
so a restarted sandbox still knows its jobs. One connection, guarded by a lock, serves all threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from .jobs import JobRecord

DB_NAME = "sandbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    workspace_id TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (workspace_id, id));
CREATE TABLE IF NOT EXISTS seed_images (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL,
    created_at REAL NOT NULL, duration REAL NOT NULL, outcome TEXT NOT NULL, visible_at REAL NOT NULL,
    project_id TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs (workspace_id, project_id);
"""


class Store:
    def __init__(self, data_dir: str | Path | None = None) -> None:
        if data_dir is None:
            target = ":memory:"
        else:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            target = str(Path(data_dir) / DB_NAME)
        # isolation_level=None: autocommit, so every write is on disk before the answer goes out.
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def put_workspace(self, workspace: dict, position: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO workspaces (id, name, role, position) VALUES (?, ?, ?, ?)",
                (workspace["id"], workspace["name"], workspace["role"], position),
            )

    def workspaces(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT id, name, role FROM workspaces ORDER BY position, id").fetchall()
        return [{"id": row[0], "name": row[1], "role": row[2]} for row in rows]

    def put_project(self, project: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO projects (workspace_id, id, data) VALUES (?, ?, ?)",
                (project["workspaceId"], project["id"], json.dumps(project)),
            )

    def project(self, workspace_id: str, project_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM projects WHERE workspace_id = ? AND id = ?", (workspace_id, project_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def project_ids(self, workspace_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM projects WHERE workspace_id = ? ORDER BY id", (workspace_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def put_seed_image(self, name: str, spec: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO seed_images (name, data) VALUES (?, ?)", (name, json.dumps(spec))
            )

    def seed_image(self, name: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM seed_images WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def add_job(self, job: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, workspace_id, kind, params, created_at, duration, outcome, visible_at,"
                " project_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.workspace_id, job.kind, json.dumps(job.params), job.created_at, job.duration,
                 job.outcome, job.visible_at, job.project_id),
            )

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job_from_row(row) if row else None

    def project_jobs(self, workspace_id: str, project_id: str) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE workspace_id = ? AND project_id = ?"
                " ORDER BY created_at, rowid",
                (workspace_id, project_id),
            ).fetchall()
        return [_job_from_row(row) for row in rows]

    def job_project_ids(self, workspace_id: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT project_id FROM jobs WHERE workspace_id = ? AND project_id IS NOT NULL",
                (workspace_id,),
            ).fetchall()
        return [row[0] for row in rows]

    def clear_jobs(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs")


_JOB_COLUMNS = "id, workspace_id, kind, params, created_at, duration, outcome, visible_at, project_id"


def _job_from_row(row: tuple) -> JobRecord:
    return JobRecord(
        id=row[0],
        workspace_id=row[1],
        kind=row[2],
        params=json.loads(row[3]),
        created_at=row[4],
        duration=row[5],
        outcome=row[6],
        visible_at=row[7],
        project_id=row[8],
    )
