"""Opt-in: a node that runs again after ComfyUI dropped its cached output collects, it does not pay.

Current cores cache by RAM pressure by default (``--cache-ram``): under pressure, outputs of earlier
prompts are evicted when the next prompt starts, and the pack's nodes run again with unchanged inputs.
The pressure is made by asking for more headroom than the machine has (``--cache-ram 1000 1000``, the
default cache mode with its thresholds set); a core without that option (0.3.64) runs with
``--cache-none``, where every node runs on every prompt. Either way the second run must find its job in
the journal and collect it: the sandbox counts one job.
"""

from __future__ import annotations

import time

import pytest

from comfyui_harness import (
    CHECKOUT_PARAMS,
    COMFYUI_PATH,
    SKIP_REASON,
    checkout_id,
    has_option,
    messages,
    running_comfy,
)
from conftest import PACK_DIR, jobs_created

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)]


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, sandbox_server, tmp_path_factory):
    pressure = ("--cache-ram", "1000", "1000") if has_option(request.param, "--cache-ram") else ("--cache-none",)
    with running_comfy(PACK_DIR, tmp_path_factory.mktemp("comfy-evicting"), request.param, sandbox_server,
                       args=pressure) as server:
        server.pressure = " ".join(pressure)
        yield server


def test_an_evicted_node_collects_its_journaled_jobs_instead_of_paying_again(comfy, sandbox):
    seed = int(time.time())
    prompt = {
        "1": {"class_type": "3DLabsStory", "inputs": {"topic": "a lighthouse keeper's last night", "max_minutes": 1,
                                                      "provider": "gemini", "project_id": "", "seed": seed}},
        "2": {"class_type": "3DLabsImageGenerate", "inputs": {
            "prompt": "a lighthouse at night", "provider": "replicate", "model": "flux-schnell",
            "aspect_ratio": "16:9", "project_id": "", "scene_number": 0, "seed": seed, "wait": True}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    runs = []
    for _ in range(3):
        entry = comfy.history(comfy.queue_prompt(prompt), timeout=120)
        assert entry["status"]["status_str"] == "success", messages(entry, "execution_error")
        [cached] = messages(entry, "execution_cached")
        runs.append((set(cached["nodes"]), entry))
    for cached, _ in runs[1:]:  # the pressure is real: the pack's nodes ran again
        assert not {"1", "2"} & cached, f"ComfyUI ({comfy.pressure}) kept the outputs: nothing was evicted"
    assert jobs_created(sandbox) == {"story": 1, "image": 1}, "a node that ran again paid again"
    story_texts = [entry["outputs"]["3"]["text"][0] for _, entry in runs]
    assert story_texts[0] and story_texts.count(story_texts[0]) == 3, "the collected story is not the paid one"
    assert all(entry["outputs"]["4"]["images"] for _, entry in runs)
    print(f"\nComfyUI {comfy.version} with {comfy.pressure}: 3 runs, nodes re-ran twice, jobs {jobs_created(sandbox)}")
