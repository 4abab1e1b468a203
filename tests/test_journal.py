"""The job journal: written at once, read back, and never able to break a generation."""

from __future__ import annotations

import json
import os
import stat

from conftest import pack_module

journal_mod = pack_module("nodes.api.journal")


def test_submitted_then_final_state(tmp_path):
    j = journal_mod.Journal(tmp_path / "jobs.jsonl")
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
    assert stat.S_IMODE(os.stat(tmp_path / "jobs.jsonl").st_mode) == 0o600


def test_same_request_same_hash():
    h = journal_mod.request_hash
    assert h("e", {"a": 1, "b": 2}) == h("e", {"b": 2, "a": 1}) != h("e", {"a": 1, "b": 3})


def test_broken_lines_are_skipped(tmp_path):
    path = tmp_path / "jobs.jsonl"
    j = journal_mod.Journal(path)
    j.record_submitted("job_ok", "image")
    with open(path, "a") as fh:
        fh.write('{"event": "submitted", "id": "job_half"')  # a crash mid-write
    assert list(j.jobs()) == ["job_ok"]


def test_unwritable_journal_never_raises(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    j = journal_mod.Journal(blocker / "sub" / "jobs.jsonl")  # parent is a file: cannot be created
    j.record_submitted("job_x", "image")
    j.record_state("job_x", "failed", error="boom")
    assert j.entries() == []
    assert "could not write the job journal" in caplog.text


def test_tokens_never_reach_the_journal(tmp_path):
    errors = pack_module("nodes.api.errors")
    errors.register_secret("journal-secret-token-42")
    j = journal_mod.Journal(tmp_path / "jobs.jsonl")
    j.record_state("job_1", "failed", error="server said Bearer journal-secret-token-42 is bad")
    assert "journal-secret-token-42" not in (tmp_path / "jobs.jsonl").read_text()


def test_the_file_is_parsed_again_only_when_it_changes(tmp_path, monkeypatch):
    j = journal_mod.Journal(tmp_path / "jobs.jsonl")
    for i in range(3):
        j.record_submitted(f"job_{i}", "image", endpoint="images/generate", body={"prompt": str(i)})
    reads = []
    real = journal_mod.Journal._merge
    monkeypatch.setattr(journal_mod.Journal, "_merge", lambda self: reads.append(1) or real(self))
    assert [j.find(f"job_{i}")["state"] for i in range(3)] == ["submitted"] * 3
    assert len(reads) == 1
    j.find("job_0")["state"] = "scribbled on by a caller"
    assert j.find("job_0")["state"] == "submitted"  # callers get copies
    j.record_state("job_1", "succeeded")  # another writer: the file grows
    assert j.find("job_1")["state"] == "succeeded" and len(reads) == 2
