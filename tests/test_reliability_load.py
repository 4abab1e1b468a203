"""Load under faults: 50 image jobs through the Image Generate node at once, while the sandbox
answers 20% of GETs with 429 or 5xx and resets 5% of connections.

Every image must come back, in prompt order; no job may be submitted twice (the sandbox counts
the jobs it creates); and the API requests used must stay under the bound derived below.

Two variants of the connection resets:
- GET-only (the main figure): a reset GET is retried by the client, so every image is delivered
  in one run.
- every method: a reset POST may or may not have made its job, so the client never re-sends it
  (MaybeSubmittedError) and journals it as maybe submitted. The node says which item and that it was
  not re-sent; queueing the same inputs again is refused before any request (AnswerLostError naming
  those items), so nothing is paid twice; a new seed pays for a new batch, deliberately.

Set THREEDLABS_RELIABILITY_REPORT=path.jsonl to have the figures appended to that file.
"""

from __future__ import annotations

import io
import re
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_pack, pack_module
from node_runner import image_args, run
from reliability_report import report

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
jobs_engine = pack_module("nodes.api.jobs")
http = pack_module("nodes.api.http")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

COUNT = 50
GET_FAULTS = dict(error_rate=0.2, reset_rate=0.05, fault_seed=7)  # seed 7: resets and errors early on
# Dice draws per request are fixed (one for a POST, two or three for a GET), so with seed 7 the
# first 50 POSTs of the every-method variant meet exactly two resets, whatever the thread order.

# The request bound, per image, for 0.3 s jobs whose first status poll comes 0.3 s after the
# batch is submitted (nodes/api/jobs.py: FIRST_POLL_SECONDS, then at least MIN_INTERVAL apart):
#   1 POST (POSTs see no injected fault in the GET-only variant: exactly one each)
# + at most 3 status reads that get an answer (most jobs have ended by the first poll; a job
#   polled early needs a second, rarely a third)
# + the failed GET attempts behind those reads: a GET fails with probability
#   0.05 + 0.95 x 0.20 = 0.24, so each answered read costs 1 / (1 - 0.24) = 1.32 attempts on
#   average; we allow 1 failed attempt per read (75% headroom over the mean).
# = 1 + 3 x 2 = 7 requests per image, 350 for the batch. Downloads go to the file host, not the
# API, and are counted separately (exactly one per image).
REQUESTS_PER_IMAGE_BOUND = 7

pytestmark = pytest.mark.usefixtures("fresh_runtime")


def prompts_for(tag: str) -> list[str]:
    return [f"{tag} scene {i + 1}: a lighthouse at dusk, wide shot number {i + 1}" for i in range(COUNT)]


def decoded_file(sandbox, job_id: str) -> torch.Tensor:
    with urllib.request.urlopen(f"{sandbox.file_url}/files/{job_id}.png", timeout=30) as resp:
        data = resp.read()
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0)


def assert_delivered_in_order(sandbox, images, job_ids: list[str], prompts: list[str]) -> None:
    assert images.shape == (COUNT, 768, 1344, 3) and images.dtype == torch.float32
    assert len(job_ids) == len(set(job_ids)) == COUNT
    journal = Journal()
    for i, jid in enumerate(job_ids):  # the sandbox's own record of what each job was asked to draw
        assert sandbox.job(jid)["params"]["prompt"] == prompts[i], f"image {i + 1} is not its prompt's job"
        assert journal.find(jid)["label"] == prompts[i][:80]
        assert torch.allclose(images[i], decoded_file(sandbox, jid), atol=1 / 255), f"image {i + 1} out of order"


def test_fifty_images_under_get_faults_all_delivered_in_order_nothing_paid_twice(sandbox):
    sandbox.set_faults(reset_gets_only=True, **GET_FAULTS)
    prompts = prompts_for("load")
    images, _masks, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts))
    stats = sandbox.stats()
    sandbox.set_faults(error_rate=0.0, reset_rate=0.0)

    ids = job_ids.split("\n")
    assert_delivered_in_order(sandbox, images, ids, prompts)
    # Zero jobs submitted twice: the sandbox made exactly one job per prompt, from exactly one POST.
    assert stats["jobs_created"]["image"] == COUNT
    assert stats["requests"]["POST /api/images/generate"] == COUNT
    assert stats["file_requests"] == COUNT and stats["file_requests_with_authorization"] == 0
    # Faults were really injected, and survived.
    injected = stats["faults_injected"]
    assert injected["reset"] >= 1 and injected["429"] + injected["5xx"] >= 5
    bound = REQUESTS_PER_IMAGE_BOUND * COUNT
    assert stats["requests_total"] <= bound, f"{stats['requests_total']} API requests for {COUNT} images"
    t = spend.tally()
    assert (t.submitted, t.succeeded, t.failed, t.reused) == ({"image": COUNT}, COUNT, 0, 0)
    report("load_get_faults", images=COUNT, jobs_created=stats["jobs_created"]["image"],
           posts=stats["requests"]["POST /api/images/generate"], status_reads=stats["requests"]["GET /api/jobs"],
           requests_total=stats["requests_total"], request_bound=bound, downloads=stats["file_requests"],
           injected_429=injected["429"], injected_5xx=injected["5xx"], injected_resets=injected["reset"])


def test_fifty_images_with_post_resets_requeue_is_refused_and_pays_once(sandbox):
    """Resets on every method: a reset POST surfaces as MaybeSubmittedError naming its item and is
    journaled as maybe submitted. Queueing the same inputs again (faults gone) is refused before any
    request, naming those items (their jobs may exist), instead of paying for them again; a new seed
    pays for a new batch, once, and delivers all 50."""
    sandbox.set_faults(reset_gets_only=False, **GET_FAULTS)
    prompts = prompts_for("requeue")
    with pytest.raises(errors.MaybeSubmittedError) as first:
        run("3DLabsImageGenerate", **image_args(prompts))
    stats = sandbox.stats()
    sandbox.set_faults(error_rate=0.0, reset_rate=0.0)
    message = str(first.value)
    assert "Submitting item" in message and f"of {COUNT}" in message and "not re-sent" in message
    assert "sends nothing that may have been paid for" in message
    made = stats["jobs_created"]["image"]
    lost = [r for r in Journal().recent(500) if r["id"].startswith("unknown-")]
    # Every item either made its job (journaled by id) or lost its answer (journaled as maybe submitted).
    # A POST can also die on a pooled connection the sandbox had already reset without reaching it: the
    # client cannot tell that apart from a lost answer, so it journals that one too.
    assert len(lost) >= 2 and made + len(lost) == COUNT, (made, len(lost))
    assert all(r["label"].startswith("answer lost") and r["state"] == "maybe-submitted" for r in lost)

    spend.reset_tallies()  # queued again: a new ComfyUI prompt
    with pytest.raises(errors.AnswerLostError) as again:
        run("3DLabsImageGenerate", **image_args(prompts))
    after = sandbox.stats()
    assert after["requests_total"] == stats["requests_total"], "queueing again sent a request"
    named = {int(n) for n in re.findall(rf"item (\d+) of {COUNT}", str(again.value))}
    assert len(named) == min(5, len(lost)) and "change the node's seed" in str(again.value)

    spend.reset_tallies()
    images, _masks, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts, seed=1))
    assert_delivered_in_order(sandbox, images, job_ids.split("\n"), prompts)
    assert sandbox.stats()["jobs_created"]["image"] == made + COUNT  # the new seed's batch, paid once
    report("load_post_resets", images=COUNT, jobs_created_first=made, answers_lost=len(lost),
           posts=stats["requests"]["POST /api/images/generate"], requeue_requests=0,
           requests_total=stats["requests_total"], injected_resets=stats["faults_injected"]["reset"],
           injected_429=stats["faults_injected"]["429"], injected_5xx=stats["faults_injected"]["5xx"])
