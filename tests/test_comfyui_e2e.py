"""Opt-in: the pack inside a real ComfyUI, against the sandbox, driven through its HTTP API."""

from __future__ import annotations

import io
import json
import time
import urllib.error

import pytest
from PIL import Image

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

NEW_INPUTS = (
    "size", "fit", "narration", "narration_pause", "music", "music_volume_db",
    "music_ducking_db", "music_fade_seconds", "clips", "clip_mode",
    "captions", "caption_texts", "caption_font_size", "caption_position",
    "caption_color", "caption_outline_color", "caption_outline", "caption_box", "caption_max_width", "caption_font",
)
CONTRACT = {
    "3DLabsStory": {"topic", "max_minutes", "provider", "project_id", "seed"},
    "3DLabsScenePlan": {"story", "max_minutes", "video_model", "seed", "clip_fps", "frame_rule"},
    "3DLabsImageGenerate": {"prompt", "provider", "model", "aspect_ratio", "project_id", "scene_number", "seed",
                            "wait"},
    "3DLabsJobWait": {"job_id", "timeout_seconds"},
    "3DLabsSceneSelect": {"scene_plan", "index"},
    "3DLabsLoadProject": {"project_id"},
    "3DLabsProjects": {"refresh"},
    "3DLabsRecentJobs": {"limit"},
    "3DLabsStoryboardTimeline": {"images", "fps", "motion", "transition", "crossfade_seconds", "width", "height",
                                 "seconds_per_scene", "scene_plan", *NEW_INPUTS},
    "3DLabsStoryboardVideo": {"images", "fps", "motion", "transition", "crossfade_seconds", "width", "height",
                              "seconds_per_scene", "scene_plan", "audio", *NEW_INPUTS},
}


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, sandbox_server, tmp_path_factory):
    with running_comfy(PACK_DIR, tmp_path_factory.mktemp("comfy-base"), request.param, sandbox_server) as server:
        yield server


@pytest.fixture
def fresh(comfy, sandbox):
    return comfy


def test_node_search_of_the_current_core_finds_the_pack(comfy):
    """Cores that read SEARCH_ALIASES serve them in /object_info, where the frontend's node search finds them."""
    info = comfy.get("/object_info")
    ours = {k: v for k, v in info.items() if k.startswith("3DLabs")}
    if not any("search_aliases" in v for v in info.values()):
        pytest.skip(f"ComfyUI {comfy.version} serves no search_aliases (0.3.64 and older ignore them)")
    for word in ("topic to video", "storyboard"):
        hits = {k for k, v in ours.items() if word in v.get("search_aliases", [])}
        assert "3DLabsStoryboardVideo" in hits, (word, hits)


def image_node(prompt, seed, **over):
    inputs = {"prompt": prompt, "provider": "replicate", "model": "flux-schnell", "aspect_ratio": "16:9",
              "project_id": "", "scene_number": 0, "seed": seed, "wait": True}
    inputs.update(over)
    return {"class_type": "3DLabsImageGenerate", "inputs": inputs}


def saved_images(comfy, entry, node_id):
    out = []
    for item in entry["outputs"][node_id]["images"]:
        path = comfy.base / "output" / item.get("subfolder", "") / item["filename"]
        out.append(Image.open(io.BytesIO(path.read_bytes())))
    return out


def test_pack_imports_fast_and_every_node_is_listed(comfy):
    seconds = comfy.import_seconds()
    assert seconds is not None, comfy.log()[-3000:]
    # A generous bound (the figure itself belongs to the benchmark): it catches a heavy import at load.
    assert seconds < 1.0, f"the pack took {seconds} s to import"
    print(f"\npack import time reported by ComfyUI: {seconds} s")
    assert not [ln for ln in comfy.log().splitlines() if "comfyui-3dlabs" in ln and "IMPORT FAILED" in ln]
    info = comfy.get("/object_info")
    for node_id, names in CONTRACT.items():
        assert node_id in info, node_id
        spec = info[node_id]["input"]
        assert set(spec.get("required", {})) | set(spec.get("optional", {})) == names, node_id
        assert info[node_id]["category"] == "3DLabs"


def test_full_chain(fresh):
    seed = int(time.time())
    prompt = {
        "1": {"class_type": "3DLabsStory", "inputs": {"topic": "A fox who repairs clocks", "max_minutes": 1,
                                                       "provider": "gemini", "project_id": "", "seed": seed}},
        "2": {"class_type": "3DLabsScenePlan", "inputs": {"story": ["1", 0], "max_minutes": 1, "video_model": "",
                                                           "seed": seed}},
        "3": image_node(["2", 1], seed),
        "4": {"class_type": "ImageScaleBy", "inputs": {"image": ["3", 0], "upscale_method": "bilinear",
                                                        "scale_by": 0.5}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "e2e_chain"}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }
    entry = fresh.history(fresh.queue_prompt(prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    scene_count = int(entry["outputs"]["7"]["text"][0])
    images = saved_images(fresh, entry, "5")
    assert len(images) == scene_count >= 2
    assert all(im.size == (672, 384) for im in images)
    assert "fox" in entry["outputs"]["6"]["text"][0].lower()


def test_eight_prompt_list_is_one_ordered_batch(fresh, sandbox):
    seed = int(time.time()) + 1
    prompt = {
        "1": {"class_type": "3DLabsStory", "inputs": {"topic": "Eight lanterns", "max_minutes": 1,
                                                       "provider": "gemini", "project_id": "", "seed": seed}},
        "2": {"class_type": "3DLabsScenePlan", "inputs": {"story": ["1", 0], "max_minutes": 1,
                                                           "video_model": "", "seed": seed}},
        "3": image_node(["2", 1], seed, aspect_ratio="1:1"),
        "5": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "e2e_list"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }
    entry = fresh.history(fresh.queue_prompt(prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    count = int(entry["outputs"]["7"]["text"][0])
    assert count == 8, "the sandbox plans 8 scenes (7.5 s on average) for 1 minute"
    assert len(saved_images(fresh, entry, "5")) == 8
    assert sandbox.stats()["jobs_created"]["image"] == 8


def test_wait_off_then_job_wait(fresh, sandbox):
    seed = int(time.time()) + 2
    prompt = {
        "3": image_node("a paper boat on a pond", seed, wait=False),
        "4": {"class_type": "3DLabsJobWait", "inputs": {"job_id": ["3", 2], "timeout_seconds": 60}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 1], "filename_prefix": "e2e_wait"}},
    }
    entry = fresh.history(fresh.queue_prompt(prompt))
    assert entry["status"]["status_str"] == "success", entry["status"]
    [im] = saved_images(fresh, entry, "5")
    assert im.size == (1344, 768)
    assert jobs_created(sandbox) == {"image": 1}


def test_interrupt_during_a_long_job(fresh, sandbox):
    prompt = {"3": image_node("HANG until interrupted", int(time.time()) + 3),
              "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}}
    pid = fresh.queue_prompt(prompt)
    deadline = time.monotonic() + 30
    while sandbox.stats()["jobs_created_total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    t0 = time.monotonic()
    fresh.post("/interrupt")
    entry = fresh.history(pid, timeout=10, poll=0.02)
    elapsed = time.monotonic() - t0
    assert messages(entry, "execution_interrupted"), entry["status"]
    assert elapsed < 0.5 + 0.25, f"interrupt took {elapsed:.2f} s"
    print(f"\ninterrupt to finished prompt (incl. history polling): {elapsed:.3f} s")


def test_failing_job_reaches_the_ui_and_comfyui_keeps_serving(fresh):
    seed = int(time.time()) + 4
    entry = fresh.history(fresh.queue_prompt({"3": image_node("please FAIL", seed),
                                              "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}}))
    [err] = messages(entry, "execution_error")
    assert err["node_type"] == "3DLabsImageGenerate"
    assert "job_" in err["exception_message"] and "failed" in err["exception_message"]
    ok = fresh.history(fresh.queue_prompt({"3": image_node("a calm sea", seed),
                                           "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}}))
    assert ok["status"]["status_str"] == "success"


def test_validation_error_is_refused_before_queueing(fresh, sandbox):
    bad = {"3": image_node("x", 1, aspect_ratio="5:4"),
           "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}}}
    with pytest.raises(AssertionError) as info:
        fresh.queue_prompt(bad)
    assert "aspect_ratio" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0


@pytest.mark.parametrize("node, bad_input", [
    ({"class_type": "3DLabsStory", "inputs": {"topic": "  ", "max_minutes": 1, "provider": "gemini",
                                              "project_id": "", "seed": 1}}, "topic"),
    (image_node("\u200b", 1), "prompt"),
])
def test_a_bad_widget_is_reported_against_that_input_alone(fresh, sandbox, node, bad_input):
    prompt = {"1": node, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}}
    with pytest.raises(urllib.error.HTTPError) as info:
        fresh.post("/prompt", {"prompt": prompt, "client_id": "pytest"})
    errors = json.loads(info.value.read())["node_errors"]["1"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == [bad_input], errors
    assert bad_input in errors[0]["details"]
    assert sandbox.stats()["requests_total"] == 0


@pytest.mark.parametrize("node", [{"class_type": "3DLabsProjects", "inputs": {"refresh": 0}},
                                  {"class_type": "3DLabsRecentJobs", "inputs": {"limit": 5}}])
def test_text_nodes_run_alone_on_a_canvas(fresh, node):
    entry = fresh.history(fresh.queue_prompt({"1": node}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["1"]["text"][0].strip()
