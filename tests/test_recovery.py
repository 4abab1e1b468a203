"""Recovery: a client process is killed (SIGKILL) in the middle of a wait; a new process, with the
same user directory, finds the paid job in the journal and collects it, submitting nothing new.

The child processes load the pack exactly as ComfyUI does (conftest.load_pack) and run the real
node classes against the session's sandbox over HTTP on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PACK_DIR, load_pack, pack_module
from node_runner import cancel_after, run

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

PROMPT = "a lighthouse in a storm, recovered after a crash"
JOB_SECONDS = 4.0  # long enough to be killed mid-wait, short enough to finish while the next process starts

CHILD = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from conftest import load_pack, pack_module
pack = load_pack()
N = pack.NODE_CLASS_MAPPINGS

def run(node_id, **kw):
    node = N[node_id]()
    out = getattr(node, node.FUNCTION)(**kw)
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    return out["result"] if isinstance(out, dict) else out

mode, prompt = sys.argv[2], sys.argv[3]
if mode in ("generate", "requeue"):
    images, masks, ids, _image_list = run("3DLabsImageGenerate", prompt=[prompt], provider=["replicate"],
                                          model=["flux-schnell"], aspect_ratio=["16:9"], scene_number=[0], seed=[0],
                                          wait=[True], unique_id=["1"])
    tally = pack_module("nodes.spend").tally()
    print(json.dumps({"ids": ids, "shape": list(images.shape), "reused": tally.reused,
                      "submitted": tally.submitted}))
elif mode == "collect":
    text, ids = run("3DLabsRecentJobs", limit=10)
    result_json, images, wait_text = run("3DLabsJobWait", job_id=[ids], timeout_seconds=[60], unique_id=["2"])
    print(json.dumps({"ids": ids, "recent": text, "shape": list(images.shape), "result": json.loads(result_json)}))
"""


def spawn(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(PACK_DIR / "tests"), mode, PROMPT],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> dict:
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, f"child failed ({child.returncode}):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def kill_mid_wait(sandbox) -> str:
    """Start a generating child, SIGKILL it once it is polling, and return the job id it journaled."""
    child = spawn("generate")
    try:
        deadline = time.monotonic() + 120  # generous: the child imports torch on a busy machine
        while sandbox.stats()["requests"]["GET /api/jobs"] < 1:
            assert child.poll() is None, f"the child ended early:\n{child.communicate()[1][-3000:]}"
            assert time.monotonic() < deadline, "the child never started polling"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    [record] = Journal().recent(10)
    assert record["state"] == "submitted" and record["kind"] == "image" and record["label"] == PROMPT
    assert sandbox.job(record["id"])["status"] in ("queued", "processing"), "killed too late: not mid-wait"
    assert sandbox.stats()["jobs_created_total"] == 1
    return record["id"]


def test_killed_mid_wait_then_collected_by_id_from_the_journal(sandbox):
    sandbox.job_seconds = JOB_SECONDS
    job_id = kill_mid_wait(sandbox)

    result = finish(spawn("collect"))
    assert result["ids"] == job_id and job_id in result["recent"] and "submitted" in result["recent"]
    assert result["shape"] == [1, 768, 1344, 3]
    assert result["result"]["id"] == job_id and result["result"]["status"] == "succeeded"
    stats = sandbox.stats()
    assert stats["jobs_created_total"] == 1 and stats["requests"]["POST /api/images/generate"] == 1
    assert Journal().find(job_id)["state"] == "succeeded"


def test_killed_mid_wait_then_the_same_prompt_queued_again_resumes_the_paid_job(sandbox):
    sandbox.job_seconds = JOB_SECONDS
    job_id = kill_mid_wait(sandbox)

    result = finish(spawn("requeue"))
    assert result["ids"] == job_id and result["shape"] == [1, 768, 1344, 3]
    assert result["reused"] == 1 and result["submitted"] == {}
    stats = sandbox.stats()
    assert stats["jobs_created_total"] == 1 and stats["requests"]["POST /api/images/generate"] == 1


def test_cancel_then_queue_again_resumes_instead_of_paying_twice(sandbox, fresh_runtime):
    """ComfyUI's Cancel stops the wait; queueing the same inputs again waits for the same job."""
    sandbox.job_seconds = 1.5
    args = dict(prompt=["a kite, cancelled"], provider=["replicate"], model=["flux-schnell"], aspect_ratio=["1:1"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["3"])
    with cancel_after(0.4), pytest.raises(comfy.LocalInterrupted):
        run("3DLabsImageGenerate", **args)
    [record] = Journal().recent(5)
    assert record["state"] == "submitted"
    spend.reset_tallies()
    images, _, job_ids, _image_list = run("3DLabsImageGenerate", **args)
    assert job_ids == record["id"] and images.shape == (1, 1024, 1024, 3)
    assert sandbox.stats()["jobs_created_total"] == 1 and spend.tally().reused == 1


def test_timed_out_then_queue_again_resumes(sandbox, fresh_runtime, monkeypatch):
    """A node timeout leaves the job running; the next queueing waits for that job, not a new one."""
    generate = pack_module("nodes.generate")
    monkeypatch.setattr(generate, "IMAGE_TIMEOUT", 0.5)
    sandbox.job_seconds = 1.5
    args = dict(prompt=["a kite, timed out"], provider=["replicate"], model=["flux-schnell"], aspect_ratio=["1:1"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["4"])
    with pytest.raises(errors.JobTimeoutError) as info:
        run("3DLabsImageGenerate", **args)
    job_id = info.value.job_id
    assert job_id in str(info.value) and Journal().find(job_id)["state"] == "timed-out"
    message = str(info.value)
    assert "queue the prompt again to go on waiting" in message and "change the seed of the node" in message
    monkeypatch.setattr(generate, "IMAGE_TIMEOUT", 60.0)
    spend.reset_tallies()
    images, _, job_ids, _image_list = run("3DLabsImageGenerate", **args)
    assert job_ids == job_id and sandbox.stats()["jobs_created_total"] == 1
    assert Journal().find(job_id)["state"] == "succeeded"
    # What the message promises for giving up: another seed is another (paid) job.
    spend.reset_tallies()
    _, _, other, _image_list = run("3DLabsImageGenerate", **{**args, "seed": [1]})
    assert other != job_id and sandbox.stats()["jobs_created_total"] == 2


def test_a_paid_job_the_service_forgot_is_submitted_again_once(sandbox, fresh_runtime):
    args = dict(prompt=["a kite, forgotten"], provider=["replicate"], model=["flux-schnell"], aspect_ratio=["1:1"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["5"])
    first = run("3DLabsImageGenerate", **args)[2]
    sandbox.reset()  # the service forgets every job (404 from now on)
    spend.reset_tallies()
    second = run("3DLabsImageGenerate", **args)[2]
    assert second != first and sandbox.stats()["jobs_created_total"] == 1
    assert Journal().find(first)["state"] == "gone"
    spend.reset_tallies()
    assert run("3DLabsImageGenerate", **args)[2] == second  # and from then on it is reused
    assert sandbox.stats()["jobs_created_total"] == 1


def test_a_forgotten_result_does_not_hide_a_newer_unfinished_job(sandbox, fresh_runtime):
    """The journal's succeeded job is gone from the service, a newer one for the same request is still
    running (a crash interrupted its wait): queueing again waits for the newer one, pays nothing."""
    reuse = pack_module("nodes.reuse")
    endpoints = pack_module("nodes.api.endpoints")
    args = dict(prompt=["a kite, twice"], provider=["replicate"], model=["flux-schnell"], aspect_ratio=["1:1"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["6"])
    client = clients.client_for()
    body = endpoints.image_body("a kite, twice", provider="replicate", model="flux-schnell", aspect_ratio="1:1")
    key = reuse.request_key(client, endpoints.IMAGES, body, 0)
    fields = dict(endpoint=endpoints.IMAGES, body=body, workspace=None, base_url=client.settings.base_url,
                  request_key=key, label="a kite, twice")
    journal = Journal()
    journal.record_submitted("job_0000000000000000", "image", **fields)
    journal.record_state("job_0000000000000000", "succeeded")
    running = sandbox.create_job("image", {"prompt": "a kite, twice", "provider": "replicate", "model": "flux-schnell",
                                           "aspectRatio": "1:1"})
    journal.record_submitted(running, "image", **fields)
    images, _, job_ids, _image_list = run("3DLabsImageGenerate", **args)
    assert job_ids == running and images.shape == (1, 1024, 1024, 3)
    assert sandbox.stats()["jobs_created_total"] == 1  # the one made above: nothing new
    assert journal.find("job_0000000000000000")["state"] == "gone"
