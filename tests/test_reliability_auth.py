"""Clerk reality: session tokens that live a few seconds, expiring several times during one job and
refreshed through THREEDLABS_TOKEN_COMMAND; and revoked tokens, which must give one clear auth
error and no retry storm (and, revoked mid-job, lose nothing: the paid jobs are resumed later).

The token command here is a small script that mints a token from the sandbox (or prints a fixed
one) and appends a line to a log, so the tests can count how often it ran.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from conftest import load_pack, pack_module
from node_runner import image_args as _image_args
from node_runner import run
from reliability_report import report

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
auth = pack_module("nodes.api.auth")
run_mod = pack_module("nodes.run")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

pytestmark = pytest.mark.usefixtures("fresh_runtime")


image_args = functools.partial(_image_args, aspect_ratio="1:1", unique_id="8")


class TokenCommand:
    """THREEDLABS_TOKEN_COMMAND for the tests: mints (ttl) or prints the token in a file; counts runs."""

    def __init__(self, tmp_path: Path, sandbox, monkeypatch, *, ttl: float | None = None) -> None:
        self.runs = tmp_path / "runs.txt"
        self.fixed = tmp_path / "token.txt"
        script = tmp_path / "token_command.py"
        url = f"{sandbox.origin}/__sandbox/token?ttl={ttl}&format=text"
        mint = (f"token = u.urlopen(u.Request({url!r}, method='POST'), timeout=30).read().decode()"
                if ttl is not None else f"token = open({str(self.fixed)!r}).read().strip()")
        script.write_text(
            "import urllib.request as u\n"
            f"{mint}\n"
            f"open({str(self.runs)!r}, 'a').write('run\\n')\n"
            "print(token)\n")
        monkeypatch.delenv("THREEDLABS_TOKEN", raising=False)
        monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", f"{sys.executable} {script}")

    def print_this(self, token: str) -> None:
        self.fixed.write_text(token)

    @property
    def count(self) -> int:
        return len(self.runs.read_text().split()) if self.runs.exists() else 0


def test_two_second_tokens_refreshed_before_expiry_over_a_five_second_job(sandbox, monkeypatch, tmp_path):
    """Tokens live 2 s, under the 10 s refresh margin: every request gets a fresh one; none is refused."""
    command = TokenCommand(tmp_path, sandbox, monkeypatch, ttl=2.0)
    sandbox.job_seconds = 5.0
    images, _, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(["a slow lighthouse"]))
    assert images.shape == (1, 1024, 1024, 3)
    stats = sandbox.stats()
    assert stats["auth_failures"] == 0 and stats["jobs_created_total"] == 1
    # A fresh token per API request (the token's whole life is inside the margin): never an old one.
    assert command.count == stats["requests_total"] >= 3


def test_tokens_expiring_in_flight_are_refreshed_once_each_and_the_job_completes(sandbox, monkeypatch, tmp_path):
    """1 s tokens, a 4 s job, and a client clock 0.5 s behind the server's (a negative margin): the
    client keeps using each token past its end, the server refuses it (Clerk's bare 404 with
    x-clerk-auth-reason), the client runs the command once and repeats the request. Several
    expiries in one job; the job completes; no job is submitted twice."""
    monkeypatch.setattr(auth, "REFRESH_MARGIN_SECONDS", -0.5)
    command = TokenCommand(tmp_path, sandbox, monkeypatch, ttl=1.0)
    sandbox.job_seconds = 4.0
    images, _, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(["a kite", "a boat"]))
    assert images.shape == (2, 1024, 1024, 3)
    stats = sandbox.stats()
    assert stats["jobs_created"]["image"] == 2 and stats["requests"]["POST /api/images/generate"] == 2
    assert 2 <= stats["auth_failures"], "the tokens never expired in flight: the test proves nothing"
    # Every refused request was repeated once, with a fresh token, and went through: refusals are
    # at most half of the requests, and the command never ran more often than requests were sent.
    assert stats["auth_failures"] <= stats["requests_total"] // 2
    assert command.count <= stats["requests_total"] - stats["auth_failures"]
    report("clerk_expiry_in_flight", job_seconds=4.0, token_ttl=1.0, tokens_refused_expired=stats["auth_failures"],
           token_command_runs=command.count, requests_total=stats["requests_total"], jobs_created=2)


def test_revoked_token_one_clear_error_no_retry(sandbox, monkeypatch):
    token = sandbox.issue_token(ttl=3600)
    sandbox.revoke(token)
    monkeypatch.setenv("THREEDLABS_TOKEN", token)
    with pytest.raises(errors.AuthError) as info:
        run("3DLabsStory", topic="Owls", max_minutes=1, provider="gemini", seed=0)
    message = str(info.value)
    assert "did not accept the token" in message and "session-token-invalid" in message and "HTTP 401" in message
    assert token not in message
    stats = sandbox.stats()
    assert stats["requests_total"] == stats["auth_failures"] == 1 and stats["jobs_created_total"] == 0


def test_token_command_printing_a_revoked_token_is_rerun_once_then_stops(sandbox, monkeypatch, tmp_path):
    command = TokenCommand(tmp_path, sandbox, monkeypatch)
    token = sandbox.issue_token(ttl=3600)
    sandbox.revoke(token)
    command.print_this(token)
    with pytest.raises(errors.AuthError) as info:
        run("3DLabsImageGenerate", **image_args(["a", "b", "c"]))
    assert "session-token-invalid" in str(info.value)
    stats = sandbox.stats()
    # Three POSTs (the list is submitted concurrently), each refused, re-tried once with a fresh
    # command run: at most 2 requests per item and never a job.
    assert stats["jobs_created_total"] == 0
    assert stats["requests_total"] == stats["auth_failures"] <= 6
    assert command.count <= 1 + stats["auth_failures"]


def test_revoked_mid_job_one_auth_error_then_resumed_without_paying_twice(sandbox, monkeypatch, tmp_path):
    command = TokenCommand(tmp_path, sandbox, monkeypatch)
    token = sandbox.issue_token(ttl=3600)
    command.print_this(token)
    sandbox.job_seconds = 1.0
    real_wait = run_mod.wait_jobs
    seen = {}

    def revoke_then_wait(*a, **kw):
        seen["before"] = sandbox.stats()["requests_total"]
        sandbox.revoke(token)
        return real_wait(*a, **kw)

    monkeypatch.setattr(run_mod, "wait_jobs", revoke_then_wait)
    with pytest.raises(errors.AuthError) as info:
        run("3DLabsImageGenerate", **image_args(["a kite", "a boat"]))
    assert "did not accept the token" in str(info.value)
    stats = sandbox.stats()
    after = stats["requests_total"] - seen["before"]
    # Every poller in flight may be refused once and retry once with a fresh command run; then stop.
    assert 1 <= after <= 2 * 2, f"{after} requests after the revocation"
    assert stats["jobs_created"]["image"] == 2
    assert [r["state"] for r in Journal().recent(5)] == ["submitted", "submitted"]

    # A new token: queueing again collects the two paid jobs and submits nothing.
    monkeypatch.setattr(run_mod, "wait_jobs", real_wait)
    command.print_this(sandbox.issue_token(ttl=3600))
    clients.reset_clients()
    spend.reset_tallies()
    images, _, _, _image_list = run("3DLabsImageGenerate", **image_args(["a kite", "a boat"]))
    assert images.shape == (2, 1024, 1024, 3)
    assert sandbox.stats()["jobs_created"]["image"] == 2
    assert spend.tally().reused == 2
