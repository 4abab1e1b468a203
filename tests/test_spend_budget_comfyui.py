"""Opt-in: a page reached by DNS rebinding queues prompts through ComfyUI's own /prompt; the budget stops it.

ComfyUI's origin check only runs for loopback Host names, so a page whose name resolves to 127.0.0.1 can
queue prompts (the pack's own routes refuse it; its nodes still run). With an hourly budget of 5, four
prompts of three one-job nodes pay 5 jobs, then every node is refused with the budget named.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from comfyui_harness import (
    CHECKOUT_PARAMS,
    COMFYUI_PATH,
    SKIP_REASON,
    checkout_id,
    messages,
    running_comfy,
)
from conftest import PACK_DIR, jobs_created

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)]


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, sandbox_server, tmp_path_factory):
    with running_comfy(PACK_DIR, tmp_path_factory.mktemp("comfy-budget"), request.param, sandbox_server,
                       {"THREEDLABS_MAX_JOBS_PER_HOUR": "5"}) as server:
        yield server


def rebound_prompt(comfy, prompt: dict) -> str:
    """POST /prompt as a rebinding page does: its own name in Host and Origin, the machine's address underneath."""
    name = f"evil.example:{comfy.port}"
    req = urllib.request.Request(comfy.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(), method="POST",
                                 headers={"Host": name, "Origin": f"http://{name}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["prompt_id"]


def test_four_rebound_prompts_of_three_jobs_pay_five_then_a_clear_error(comfy, sandbox):
    seed = int(time.time())
    entries = []
    for p in range(4):
        prompt = {}
        for k in range(3):
            prompt[str(2 * k + 1)] = {"class_type": "3DLabsImageGenerate", "inputs": {
                "prompt": f"scene {k} of prompt {p}", "provider": "replicate", "model": "flux-schnell",
                "aspect_ratio": "16:9", "project_id": "", "scene_number": 0, "seed": seed, "wait": True}}
            prompt[str(2 * k + 2)] = {"class_type": "PreviewAny", "inputs": {"source": [str(2 * k + 1), 2]}}
        entries.append(comfy.history(rebound_prompt(comfy, prompt), timeout=120))
    assert jobs_created(sandbox) == {"image": 5}
    assert entries[0]["status"]["status_str"] == "success"
    refused = [m for e in entries[1:] for m in messages(e, "execution_error")]
    assert refused and all("jobs allowed per hour" in m["exception_message"] for m in refused), refused
    assert "THREEDLABS_MAX_JOBS_PER_HOUR" in refused[0]["exception_message"]
