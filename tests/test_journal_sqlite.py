"""The journal's database: indexed lookups, pruning, other processes, damaged files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import PACK_DIR, journal_events, pack_module

journal_mod = pack_module("nodes.api.journal")

DAY = 86400.0
FIELDS = {"base_url": "http://x/api", "workspace": "ws_a"}
T = time.time() - 1000  # recent: old enough to order, too young to prune


@pytest.fixture(autouse=True)
def _prune_again():
    """Pruning runs once a day per process and database: every test starts that clock afresh."""
    journal_mod._pruned_at.clear()
    yield
    journal_mod._pruned_at.clear()


def submitted(job_id, when, request="key", **extra):
    return {"event": "submitted", "id": job_id, "kind": "image", "time": when, "request": request, **FIELDS, **extra}


def state(job_id, value, when):
    return {"event": "state", "id": job_id, "state": value, "time": when}


# --- indexed lookups -------------------------------------------------------------------------------


def test_lookups_by_id_and_request_use_an_index(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image", request_key="key", **FIELDS)
    with sqlite3.connect(j.path) as conn:
        for sql, params in ((journal_mod.FIND_SQL, ("job_1",)), (journal_mod.BY_REQUEST_SQL, ("key",)),
                            (journal_mod.RECENT_SQL, (5,))):
            plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "INDEX" in plan and "TEMP B-TREE" not in plan, (sql, plan)
            assert sql == journal_mod.RECENT_SQL or plan.startswith("SEARCH"), (sql, plan)


def test_find_paid_prefers_the_newest_success_then_the_newest_unfinished(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    for job_id, final in [("job_a", "succeeded"), ("job_b", "succeeded"), ("job_c", "failed"),
                          ("job_d", None), ("job_e", "timed-out")]:
        j.record_submitted(job_id, "image", request_key="key", **FIELDS)
        if final:
            j.record_state(job_id, final)
    j.record_submitted("job_other_ws", "image", request_key="key", base_url="http://x/api", workspace="ws_b")
    j.record_submitted("job_other_api", "image", request_key="key", base_url="http://y/api", workspace="ws_a")
    j.record_submitted("unknown-1", "image", request_key="key", **FIELDS)
    j.record_submitted("job_other_key", "image", request_key="other", **FIELDS)
    j.record_state("job_other_key", "succeeded")
    assert j.find_paid("key", **FIELDS)["id"] == "job_b"
    j.record_state("job_a", "gone")
    j.record_state("job_b", "gone")
    assert j.find_paid("key", **FIELDS)["id"] == "job_e"  # the newest whose end nobody saw
    assert j.find_paid("key", **FIELDS, unfinished=False) is None
    assert j.find_paid("key", base_url="http://x/api", workspace="ws_b")["id"] == "job_other_ws"
    assert j.find_paid("nothing", **FIELDS) is None
    assert [r["id"] for r in j.recent(3)] == ["job_other_key", "unknown-1", "job_other_api"]


def test_threads_of_one_process_share_a_journal(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")

    def worker(n):
        for i in range(40):
            j.record_submitted(f"job_{n}_{i}", "image", request_key=f"k{n}", **FIELDS)
            j.record_state(f"job_{n}_{i}", "succeeded")
            assert j.find(f"job_{n}_{i}")["state"] == "succeeded"

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(j.jobs()) == 240 and {r["state"] for r in j.jobs().values()} == {"succeeded"}


def test_every_write_changes_the_files_mtime(tmp_path):
    # Recent Jobs re-runs when os.stat(Journal().path) changes; in WAL mode commits go to -wal.
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image")
    os.utime(j.path, ns=(0, 0))
    j.record_state("job_1", "succeeded")
    assert os.stat(j.path).st_mtime_ns > 0


# --- pruning ---------------------------------------------------------------------------------------


def test_old_settled_jobs_are_pruned_and_unfinished_ones_kept(tmp_path, monkeypatch):
    now, old = time.time(), time.time() - 40 * DAY
    events = []
    for job_id, final in [("old_ok", "succeeded"), ("old_failed", "failed"), ("old_gone", "gone"),
                          ("old_canceled", "canceled"), ("old_timed_out", "timed-out"), ("old_unknown", "unknown"),
                          ("old_submitted", None)]:
        events.append(submitted(job_id, old))
        if final:
            events.append(state(job_id, final, old))
    events += [submitted("new_ok", now), state("new_ok", "succeeded", now),
               submitted("old_but_settled_lately", old), state("old_but_settled_lately", "failed", now - DAY)]
    path = tmp_path / "jobs.sqlite3"
    journal_events(*events, journal=journal_mod.Journal(path))
    assert len(journal_mod.Journal(path).jobs()) == 9  # written after this process's pruning ran
    journal_mod._pruned_at.clear()  # the next process, or a day later
    kept = journal_mod.Journal(path).jobs()
    assert sorted(kept) == ["new_ok", "old_but_settled_lately", "old_submitted", "old_timed_out", "old_unknown"]


def test_pruning_runs_at_most_once_a_day_and_follows_the_setting(tmp_path, monkeypatch):
    old, path = time.time() - 10 * DAY, tmp_path / "jobs.sqlite3"
    monkeypatch.setenv("THREEDLABS_JOURNAL_DAYS", "0")  # keep everything
    journal_events(submitted("job_1", old), state("job_1", "succeeded", old), journal=journal_mod.Journal(path))
    assert list(journal_mod.Journal(path).jobs()) == ["job_1"]
    journal_mod._pruned_at.clear()
    assert list(journal_mod.Journal(path).jobs()) == ["job_1"]
    monkeypatch.setenv("THREEDLABS_JOURNAL_DAYS", "5")
    journal_mod._pruned_at.clear()
    assert list(journal_mod.Journal(path).jobs()) == []
    journal_events(submitted("job_2", old), state("job_2", "failed", old), journal=journal_mod.Journal(path))
    assert list(journal_mod.Journal(path).jobs()) == ["job_2"]  # not again today
    monkeypatch.setenv("THREEDLABS_JOURNAL_DAYS", "a month")
    assert journal_mod.retention_seconds() == 30 * DAY


# --- other processes -------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from nodes.api.journal import Journal
    j = Journal(sys.argv[2])
    name, count = sys.argv[3], int(sys.argv[4])
    for i in range(count):
        j.record_submitted(f"{name}_{i}", "image", request_key=f"{name}", base_url="b", workspace=None)
        j.record_state(f"{name}_{i}", "succeeded")
""")


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(PACK_DIR), str(path), name, "200"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("one", "two")]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "could not write" not in "".join(err for _, err in outputs)
    jobs = journal_mod.Journal(path).jobs()
    assert len(jobs) == 400 and {r["state"] for r in jobs.values()} == {"succeeded"}
    for name in ("one", "two"):  # each writer's own order is kept
        assert [k for k in jobs if k.startswith(name)] == [f"{name}_{i}" for i in range(200)]


# --- damaged files ---------------------------------------------------------------------------------


def test_a_damaged_database_is_moved_aside_and_a_new_one_used(tmp_path, caplog):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"\x00garbage, not a database\xff" * 300)
    j = journal_mod.Journal(path)
    j.record_submitted("job_1", "image")
    assert j.find("job_1")["state"] == "submitted"
    aside = [n for n in os.listdir(tmp_path) if n.startswith("jobs.sqlite3.corrupt")]
    assert len(aside) == 1 and "was damaged" in caplog.text
    assert (tmp_path / aside[0]).read_bytes().startswith(b"\x00garbage")  # kept for whoever wants it


def test_a_database_damaged_while_open_is_replaced_without_raising(tmp_path, caplog):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image")
    j.close()
    for side in ("-wal", "-shm"):
        if os.path.exists(str(j.path) + side):
            os.remove(str(j.path) + side)
    j.path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)  # a header, then rubbish
    j.record_submitted("job_2", "image")
    assert list(j.jobs()) == ["job_2"] and "was damaged" in caplog.text


def test_damage_found_by_a_lookup_replaces_the_file_once(tmp_path, caplog):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    for i in range(300):
        j.record_submitted(f"job_{i}", "image", label="x" * 100, request_key=f"k{i}")
    j.close()
    with sqlite3.connect(j.path) as conn:  # everything into the main file, then damage its middle pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(j.path.read_bytes())
    data[8192:len(data) - 4096] = b"\xa5" * (len(data) - 4096 - 8192)
    j.path.write_bytes(bytes(data))
    assert journal_mod.Journal(j.path).find("job_1") is None  # the lookup itself never raises
    j.record_submitted("job_new", "image")
    *read_back, last = j.jobs()  # the jobs on undamaged pages, then the new one
    assert last == "job_new" and read_back and set(read_back) <= {f"job_{i}" for i in range(300)}
    assert "was damaged" in caplog.text and f"{len(read_back)} job(s) could be read back" in caplog.text
    assert {n for n in os.listdir(tmp_path) if ".corrupt" in n} <= {"jobs.sqlite3.corrupt", "jobs.sqlite3.corrupt-wal"}


def test_recent_jobs_notes_a_replaced_journal_until_the_retention_has_passed(tmp_path, monkeypatch):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"not a database at all" * 300)
    j = journal_mod.Journal(path)
    note = j.damage_note()  # reading it found the damage and replaced it...
    assert j.recent() == [] and path.with_name("jobs.sqlite3.corrupt").exists()
    assert "was damaged (file is not a database)" in note and f"kept, untouched, as {path}.corrupt" in note
    monkeypatch.setenv("THREEDLABS_JOURNAL_DAYS", "0")  # ...and keeping everything keeps the note
    assert j.damage_note() == note
    monkeypatch.setenv("THREEDLABS_JOURNAL_DAYS", "0.000001")  # 0.09 s
    time.sleep(0.2)
    assert j.damage_note() is None
