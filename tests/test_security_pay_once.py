"""Paying twice or more (issue 22): every attack plays over real HTTP on loopback, and the sandbox's own
counters say how many job-creating POSTs reached it and how many jobs it made.

- A POST's answer lost (the connection closed after the job was made), slower than the read timeout,
  or Canceled mid-way: the node says the job may exist; the same inputs queued again are refused with
  AnswerLostError (how to find the job, how to pay anyway: a new seed), never paid again in silence.
- Two identical nodes in one prompt, and two processes on one user directory: one POST, one job; the
  second caller waits for the first one's POST. A claimant killed mid-POST leaves a refused request.
- A status line that reads "Connection refused" after the job was made: sent once, journaled.
- Answers to a POST that cannot be read (nested 100,000 deep, a bogus charset, 32 MiB of `{},`): a
  typed error and a journaled "maybe submitted" request; a poll answer of 32 MiB of `{},` is refused
  before it is parsed.
- Every job-creating POST carries an Idempotency-Key derived from the request key (never the token);
  the sandbox honours it as Stripe does, and nothing in the client relies on that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
import requests
from scripted_server import ScriptedServer, send, send_json
from test_security_transport import PNG

from conftest import PACK_DIR, load_pack, pack_module
from node_runner import cancel_after, image_args, run, submit_job

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
http = pack_module("nodes.api.http")
reuse = pack_module("nodes.reuse")
endpoints = pack_module("nodes.api.endpoints")
journal_mod = pack_module("nodes.api.journal")
spend = pack_module("nodes.spend")
Journal = journal_mod.Journal
N = pack.NODE_CLASS_MAPPINGS

pytestmark = pytest.mark.usefixtures("fresh_runtime", "fast_retries")

POST_IMAGES = "POST /api/images/generate"
PROMPT = "a lighthouse keeper's cat, paid for once"


def posts(sandbox) -> int:
    return sandbox.stats()["requests"][POST_IMAGES]


def generate(prompt: str = PROMPT, **over):
    return run("3DLabsImageGenerate", **image_args([prompt], **over))


def queue_again(prompt: str = PROMPT, **over):
    spend.reset_tallies()  # a new ComfyUI prompt
    return generate(prompt, **over)


def lost_records() -> list[dict]:
    return [r for r in Journal().recent(50) if r["id"].startswith("unknown-")]


def refused(sandbox, fn, paid_posts: int = 1) -> errors.AnswerLostError:
    """``fn()`` (queueing again) sends nothing more and is refused with the promised words."""
    try:
        outcome = fn()
    except errors.ThreeDLabsError as err:
        outcome = err
    assert posts(sandbox) == paid_posts, f"queueing again sent the POST again: {outcome!r}"[:300]
    assert isinstance(outcome, errors.AnswerLostError), outcome
    message = str(outcome)
    for words in ("answer was lost", "nothing was sent again", "3DLabs app", "Recent Jobs", "Job Wait",
                  "change the node's seed", "unknown-"):
        assert words in message, f"{words!r} not in {message!r}"
    assert sandbox.stats()["jobs_created_total"] == paid_posts
    return outcome


def slow_reads(monkeypatch, seconds: float) -> None:
    """The node's client gives up on an answer after ``seconds`` of silence (the read timeout)."""
    real = clients.settings
    monkeypatch.setattr(clients, "settings", lambda: dataclasses.replace(real(), read_timeout=seconds))


# --- 1. a lost answer stays "maybe submitted": queueing again is refused, not paid -------------------


def test_a_lost_answer_then_queue_again_is_refused_not_paid_again(sandbox):
    sandbox.set_faults(drop_after_create=True)
    with pytest.raises(errors.MaybeSubmittedError) as first:
        generate()
    sandbox.set_faults(drop_after_create=False)  # the network is fine again: still not paid twice

    err = refused(sandbox, queue_again)
    [lost] = lost_records()
    assert lost["state"] == journal_mod.MAYBE_SUBMITTED and lost["label"].startswith("answer lost")
    assert lost["id"] in str(err) and spend.tally().submitted == {}
    assert "queueing the same inputs again will not send it" in str(first.value)
    # What the message promises: a new seed pays for a new job, once.
    images, _, job_id, _image_list = queue_again(seed=1)
    assert images.shape[0] == 1 and job_id.startswith("job_") and posts(sandbox) == 2


def test_a_post_answer_slower_than_the_read_timeout_then_queue_again_pays_once(sandbox, monkeypatch):
    slow_reads(monkeypatch, 0.4)
    sandbox.set_faults(post_answer_delay_ms=1500)
    with pytest.raises(errors.MaybeSubmittedError) as first:
        generate()
    sandbox.set_faults(post_answer_delay_ms=0)
    refused(sandbox, queue_again)
    assert "ReadTimeout" in str(first.value) and lost_records()


def test_cancel_during_the_post_then_queue_again_pays_once(sandbox):
    """Cancel ends the node while its POST is still out; queued again at once, the same inputs wait for
    that POST and collect its job."""
    sandbox.set_faults(post_answer_delay_ms=1500)
    with cancel_after(0.3), pytest.raises(comfy.LocalInterrupted):
        generate()
    assert posts(sandbox) == 1
    images, _, job_id, _image_list = queue_again()
    assert images.shape[0] == 1 and Journal().find(job_id)["state"] == "succeeded"
    assert posts(sandbox) == 1 and sandbox.stats()["jobs_created_total"] == 1
    assert spend.tally().submitted == {} and spend.tally().reused == 1


# --- 2. one request key in flight once: per process, and per user directory -------------------------


def test_two_identical_nodes_in_one_prompt_pay_once(sandbox):
    """ComfyUI runs a prompt's independent async nodes concurrently: here under one event loop."""
    sandbox.set_faults(post_answer_delay_ms=400)  # a real API takes a moment to answer a POST

    async def prompt():
        node = N["3DLabsImageGenerate"]
        return await asyncio.gather(*(node().run(**image_args([PROMPT], unique_id=uid)) for uid in ("7", "8")))

    first, second = asyncio.run(prompt())
    assert first["result"][2] == second["result"][2]
    assert posts(sandbox) == 1 and sandbox.stats()["jobs_created_total"] == 1
    tally = spend.tally()
    assert tally.submitted == {"image": 1} and tally.reused == 1, tally


CHILD = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from conftest import load_pack
from node_runner import image_args, run
load_pack()
images, masks, ids, _image_list = run("3DLabsImageGenerate", **image_args([sys.argv[2]], unique_id="1"))
print(json.dumps({"ids": ids, "shape": list(images.shape)}))
"""


def spawn_generate(prompt: str) -> subprocess.Popen:
    """Another Python process running the node against the same sandbox and THREEDLABS_USER_DIR."""
    return subprocess.Popen([sys.executable, "-c", CHILD, str(PACK_DIR / "tests"), prompt], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_its_post(sandbox, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # generous: the child imports torch on a busy machine
    while posts(sandbox) < 1:
        assert child.poll() is None, f"the other process ended early:\n{child.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "the other process never sent its POST"
        time.sleep(0.05)


def test_two_processes_on_one_journal_pay_once(sandbox):
    sandbox.set_faults(post_answer_delay_ms=4000)
    child = spawn_generate(PROMPT)
    try:
        wait_for_its_post(sandbox, child)
        images, _, job_id, _image_list = generate()  # this process: the same inputs while the other one's POST is out
        out, err = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["ids"] == job_id and images.shape[0] == 1
    assert posts(sandbox) == 1 and sandbox.stats()["jobs_created_total"] == 1
    assert spend.tally().submitted == {} and spend.tally().reused == 1


def test_a_process_killed_mid_post_leaves_a_maybe_submitted_request_that_is_refused(sandbox):
    sandbox.set_faults(post_answer_delay_ms=60_000)
    child = spawn_generate(PROMPT)
    try:
        wait_for_its_post(sandbox, child)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)  # reaped: a zombie would still look alive
    err = refused(sandbox, generate)
    assert f"pid {child.pid}" in str(err) and "ended before its answer was recorded" in str(err)
    refused(sandbox, queue_again)  # and it stays refused, as any lost answer


def test_a_claim_older_than_a_post_may_take_is_refused_as_maybe_submitted(sandbox):
    """A claimant that is alive but far past the POST's own timeouts (a hung process, another host)."""
    client = clients.client_for()
    body = endpoints.image_body(PROMPT, provider="replicate", model="flux-schnell", aspect_ratio="16:9")
    key = reuse.request_key(client, endpoints.IMAGES, body, 0)
    then = time.time() - 3600
    client.journal.transaction(lambda conn: conn.execute(
        "INSERT INTO claims (request, attempt, token, owner_pid, owner_host, claimed_at, expires_at) "
        "VALUES (?, 1, 'abandoned', 1, 'another-host', ?, ?)", (key, then, then + client.post_seconds())))
    with pytest.raises(errors.AnswerLostError) as info:
        generate()
    assert "longer than a POST may take" in str(info.value)
    assert posts(sandbox) == 0 and lost_records()


# --- 3. whether a POST reached the server is decided by type, never by text -------------------------


def test_a_refused_status_line_after_the_job_was_made_is_sent_once_and_journaled(sandbox):
    sandbox.set_faults(post_answer="refused_status_line")
    with pytest.raises(errors.ThreeDLabsError) as first:
        generate()
    assert posts(sandbox) == 1 and sandbox.stats()["jobs_created_total"] == 1, "a job may exist: never re-sent"
    assert isinstance(first.value, errors.MaybeSubmittedError) and "Connection refused" in str(first.value)
    [lost] = lost_records()
    assert lost["state"] == journal_mod.MAYBE_SUBMITTED
    sandbox.set_faults(post_answer="ok")
    refused(sandbox, queue_again)


def test_a_refused_connection_is_still_sent_again_and_journals_nothing():
    """Nothing listens: the connection is refused before a byte is sent, so no job can exist."""
    pytest.importorskip("urllib3")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: connecting is refused
    try:
        requests.post(f"http://127.0.0.1:{port}/api/images/generate", json={}, timeout=2)
    except requests.RequestException as exc:
        assert not http._sent_before_failure(exc), repr(exc)
    else:
        raise AssertionError("a closed port answered")


def test_whether_a_post_was_sent_is_decided_by_type_never_by_text():
    from http.client import BadStatusLine

    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

    refused = requests.ConnectionError(MaxRetryError(None, "/api", NewConnectionError(None, "[Errno 111]")))
    lying = requests.ConnectionError(ProtocolError("Connection aborted.",
                                                   BadStatusLine("HTTP/1.1 2OO Connection refused")))
    assert not http._sent_before_failure(refused) and not http._sent_before_failure(requests.ConnectTimeout())
    assert http._sent_before_failure(lying) and http._sent_before_failure(requests.ReadTimeout())


# --- 4. answers to a POST that cannot be read: typed, and journaled as maybe submitted --------------


@pytest.mark.parametrize("how,words", [
    ("deep_nesting", "nested too deeply"),
    ("bogus_charset", "unknown charset ('x-bogus')"),
    ("many_objects", "more than 250,000 JSON objects and arrays"),
])
def test_an_unreadable_post_answer_is_a_typed_error_and_journaled(sandbox, how, words):
    sandbox.set_faults(post_answer=how)
    with pytest.raises(errors.MaybeSubmittedUnreadableError) as info:
        generate()
    assert words in str(info.value) and "the job may exist" in str(info.value)
    assert posts(sandbox) == 1 and sandbox.stats()["jobs_created_total"] == 1
    [lost] = lost_records()
    assert lost["state"] == journal_mod.MAYBE_SUBMITTED and words in lost["error"]
    sandbox.set_faults(post_answer="ok")
    refused(sandbox, queue_again)


def test_a_poll_answer_of_32_mib_of_empty_objects_is_refused_before_it_is_parsed(sandbox):
    client = clients.client_for()
    job_id = submit_job(client, "image", "a kite", provider="replicate", model="flux-schnell", aspect_ratio="1:1")
    sandbox.set_faults(poll_answer="many_objects")
    tracemalloc.start()
    try:
        with pytest.raises(errors.ResponseFormatError, match="more than 250,000 JSON objects"):
            client.get_job(job_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The body itself (32 MiB) is read, as bytes and as text; the 11 million objects are never built.
    assert peak < 300 * 2**20, f"{peak / 2**20:.0f} MB for one poll"
    assert sandbox.stats()["faults_injected"]["many_objects"] == 1


def test_deep_and_bogus_poll_answers_are_typed_errors(sandbox):
    client = clients.client_for()
    job_id = submit_job(client, "image", "a kite", provider="replicate", model="flux-schnell", aspect_ratio="1:1")
    for how, words in (("deep_nesting", "nested too deeply"), ("bogus_charset", "unknown charset")):
        sandbox.set_faults(poll_answer=how)
        with pytest.raises(errors.ResponseFormatError, match=words):
            client.get_job(job_id)


def test_the_container_count_ignores_brackets_inside_strings():
    story = json.dumps({"title": "{[" * 200_000, "beats": [{"n": 1}]})
    assert http.count_containers(story, 250_000) == 3  # the object, "beats" and its one item
    assert http.count_containers("[" + "{}," * 300_000 + "{}]", 250_000) == 300_002


# --- 5. the Idempotency-Key ----------------------------------------------------------------------


@pytest.fixture
def recording_api():
    """An API that records each request's headers: POSTs answer 429 once, then a job; jobs succeed."""
    state = {"posts": 0}

    def handle(h, body: bytes) -> None:
        if h.command == "POST":
            state["posts"] += 1
            if state["posts"] == 1:
                send_json(h, 429, {"error": "slow down"}, {"Retry-After": "0"})
            else:
                send_json(h, 200, {"jobId": f"job_{state['posts']}"})
        elif h.path.startswith("/api/jobs/"):
            send_json(h, 200, {"status": "failed" if h.path.endswith("_2") else "succeeded", "error": None,
                               "result": {"imageUrl": f"{server.origin}/files/x.png"}})
        else:
            send(h, 200, PNG, "image/png")

    server = ScriptedServer(handle)
    yield server
    server.stop()


def test_every_job_post_carries_an_idempotency_key_from_the_request_key(recording_api, monkeypatch):
    monkeypatch.setenv("THREEDLABS_BASE_URL", recording_api.origin + "/api")
    monkeypatch.setenv("THREEDLABS_TOKEN", "idempotency-canary-token-5f4e3d")
    with pytest.raises(errors.JobFailedError):  # job_2 fails: queueing again pays for a new job
        generate()
    queue_again()
    queue_again(seed=9)
    keys = [headers.get("idempotency-key") for method, _, headers in recording_api.requests if method == "POST"]
    assert len(keys) == 4 and all(k and len(k) == 32 for k in keys), keys
    assert keys[0] == keys[1], "a retry after a 429 must carry the same key"
    assert len({keys[1], keys[2], keys[3]}) == 3, "a new attempt, or a new seed, is a new key"
    assert not any("canary" in k for k in keys)
    client = clients.client_for()
    body = endpoints.image_body(PROMPT, provider="replicate", model="flux-schnell", aspect_ratio="16:9")
    request_key = reuse.request_key(client, endpoints.IMAGES, body, 0)
    salt = client.journal.transaction(
        lambda conn: conn.execute("SELECT value FROM meta WHERE key = 'idempotency_salt'").fetchone()[0])
    assert keys[0] == hashlib.sha256(f"{salt}:{request_key}:1".encode()).hexdigest()[:32]
    assert keys[2] == hashlib.sha256(f"{salt}:{request_key}:2".encode()).hexdigest()[:32]


def test_the_sandbox_honours_the_idempotency_key_as_stripe_does(sandbox):
    url = sandbox.origin + "/api/images/generate"
    body = {"prompt": "a kite", "provider": "replicate", "model": "flux-schnell", "aspectRatio": "1:1"}

    def post(key, payload=body, workspace=None):
        headers = {"Authorization": f"Bearer {sandbox.static_token}", "Idempotency-Key": key}
        if workspace:
            headers["x-workspace-id"] = workspace
        return requests.post(url, json=payload, headers=headers, timeout=10)

    first, again = post("k-1"), post("k-1")
    assert first.status_code == again.status_code == 200
    assert first.json()["jobId"] == again.json()["jobId"] and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert sandbox.stats()["jobs_created_total"] == 1
    other = post("k-1", {**body, "prompt": "another kite"})
    assert other.status_code == 422 and "different request" in other.json()["error"]
    assert post("k-1", workspace="ws_team").json()["jobId"] != first.json()["jobId"]  # keys are per workspace
    assert post("x" * 256).status_code == 400
    assert sandbox.stats()["jobs_created_total"] == 2
