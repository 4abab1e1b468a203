"""The job journal: written at once, read back, and never able to break a generation."""

from __future__ import annotations

import json
import os
import stat

from conftest import pack_module

journal_mod = pack_module("nodes.api.journal")


def test_submitted_then_final_state(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image", endpoint="images/generate", body={"prompt": "a cat"},
                       profile="default", workspace="ws_a", base_url="http://x/api", label="a cat")
    j.record_submitted("job_2", "story", endpoint="claude/stories", body={"topic": "t"}, profile="p")
    j.record_state("job_1", "succeeded")
    rec = j.find("job_1")
    assert rec["kind"] == "image" and rec["state"] == "succeeded" and rec["workspace"] == "ws_a"
    assert len(rec["request"]) == 16 and "prompt" not in json.dumps(rec)
    assert j.find("job_2")["state"] == "submitted"
    assert [r["id"] for r in j.recent(5)] == ["job_2", "job_1"]
    assert j.recent(1)[0]["id"] == "job_2"
    assert j.path == tmp_path / "jobs.sqlite3"
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_same_request_same_hash():
    h = journal_mod.request_hash
    assert h("e", {"a": 1, "b": 2}) == h("e", {"b": 2, "a": 1}) != h("e", {"a": 1, "b": 3})


def test_unwritable_journal_never_raises(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    j = journal_mod.Journal(blocker / "sub" / "jobs.sqlite3")  # parent is a file: cannot be created
    j.record_submitted("job_x", "image")
    j.record_state("job_x", "failed", error="boom")
    assert j.jobs() == {} and j.find("job_x") is None and j.recent() == []
    assert "could not write the job journal" in caplog.text
    assert "job_x was NOT recorded" in caplog.text  # the id the user may need is in the log


def test_tokens_never_reach_the_journal(tmp_path):
    redaction = pack_module("nodes.api.redaction")
    redaction.register_secret("journal-secret-token-42")
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image", label="a cat, journal-secret-token-42")
    j.record_state("job_1", "failed", error="server said Bearer journal-secret-token-42 is bad")
    rec = j.find("job_1")
    assert "journal-secret-token-42" not in json.dumps(rec) and "***" in rec["error"]
    j.close()
    for name in os.listdir(tmp_path):  # the database and its -wal file, byte for byte
        assert b"journal-secret-token-42" not in (tmp_path / name).read_bytes(), name


def test_key_shaped_job_ids_are_kept_intact(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    ids = ["key_0123456789abcdefXYZ", "sk-0123456789abcdefghij", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"]
    for job_id in ids:
        j.record_submitted(job_id, "image")
        j.record_state(job_id, "succeeded")
    assert [j.find(job_id)["id"] for job_id in ids] == ids and list(j.jobs()) == ids


def test_callers_get_copies_and_see_other_writers(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    for i in range(3):
        j.record_submitted(f"job_{i}", "image", endpoint="images/generate", body={"prompt": str(i)})
    assert [j.find(f"job_{i}")["state"] for i in range(3)] == ["submitted"] * 3
    j.find("job_0")["state"] = "scribbled on by a caller"
    j.jobs()["job_0"]["state"] = "scribbled on by a caller"
    assert j.find("job_0")["state"] == "submitted"  # callers get copies
    journal_mod.Journal(tmp_path / "jobs.sqlite3").record_state("job_1", "succeeded")  # another writer
    assert j.find("job_1")["state"] == "succeeded"


def test_each_record_holds_its_submission_then_its_latest_state(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.sqlite3")
    j.record_submitted("job_1", "image", label="x")
    j.record_state("job_1", "failed", error="boom")
    j.record_submitted("job_2", "story")
    jobs = j.jobs()
    assert list(jobs) == ["job_1", "job_2"]  # in order of submission
    one, two = jobs["job_1"], jobs["job_2"]
    assert one["label"] == "x" and one["kind"] == "image" and one["submitted_at"] <= one["updated_at"]
    assert one["state"] == "failed" and one["error"] == "boom"
    assert two["kind"] == "story" and two["state"] == "submitted" and "updated_at" not in two
