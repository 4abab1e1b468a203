"""The node classes without ComfyUI, against the sandbox: outputs, batching, spend, cancel, reuse."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import jobs_created, journal_events, load_pack, pack_module
from node_runner import cancel_after, image_args, run

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
models = pack_module("nodes.api.models")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

pytestmark = pytest.mark.usefixtures("fresh_runtime")


# Appended after the inputs saved workflows know (their widgets keep their places), in this order.
NEW_INPUTS = [
    "size", "fit", "narration", "narration_pause", "music", "music_volume_db",
    "music_ducking_db", "music_fade_seconds", "clips", "clip_mode",
    "captions", "caption_texts", "caption_font_size", "caption_position",
    "caption_color", "caption_outline_color", "caption_outline", "caption_box", "caption_max_width", "caption_font",
]

def test_every_node_declares_the_contract():
    expected = {
        "3DLabsStory": ["topic", "max_minutes", "provider", "seed", "project_id"],
        "3DLabsScenePlan": ["story", "max_minutes", "seed", "video_model", "clip_fps", "frame_rule"],
        "3DLabsImageGenerate": ["prompt", "provider", "model", "aspect_ratio", "scene_number", "seed", "wait",
                                "project_id"],
        "3DLabsJobWait": ["job_id", "timeout_seconds"],
        "3DLabsSceneSelect": ["scene_plan", "index"],
        "3DLabsLoadProject": ["project_id"],
        "3DLabsProjects": ["refresh"],
        "3DLabsRecentJobs": ["limit"],
        "3DLabsStoryboardTimeline": ["images", "fps", "motion", "transition", "crossfade_seconds", "width", "height",
                                     "seconds_per_scene", "scene_plan", *NEW_INPUTS],
        "3DLabsStoryboardVideo": ["images", "fps", "motion", "transition", "crossfade_seconds", "width", "height",
                                  "seconds_per_scene", "scene_plan", "audio", *NEW_INPUTS],
    }
    assert set(expected) <= set(N)  # nodes added by other parts of the pack declare their own contract
    for node_id, names in expected.items():
        cls = N[node_id]
        spec = cls.INPUT_TYPES()
        declared = list(spec["required"]) + list(spec.get("optional", {}))
        assert declared == names, node_id
        assert cls.CATEGORY == "3DLabs" and cls.DESCRIPTION and pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
        for name, (_, opts) in {**spec["required"], **spec.get("optional", {})}.items():
            assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        assert not any("token" in n or "key" in n for n in declared), "no secret inputs, ever"
    assert N["3DLabsStory"].INPUT_TYPES()["required"]["seed"][1]["control_after_generate"] is True
    assert N["3DLabsScenePlan"].OUTPUT_IS_LIST == (False, True, False, False, False, True, True, True)
    assert N["3DLabsImageGenerate"].OUTPUT_IS_LIST == (False, False, False, True)


def test_story_then_plan_then_select(sandbox):
    story, text, job_id = run("3DLabsStory", topic="A fox who collects clocks", max_minutes=1, provider="gemini",
                              seed=0, unique_id="1")
    assert isinstance(story, models.Story) and story.job_id == job_id
    assert isinstance(text, str) and "fox" in text.lower() and story.title in text
    plan, prompts, count, plan_text, plan_job, *_per_scene = run("3DLabsScenePlan", story=story, max_minutes=1,
                                                                 seed=0, video_model="", unique_id="2")
    assert isinstance(plan, models.ScenePlan) and count == len(prompts) == len(plan.scenes) >= 2
    assert all(isinstance(p, str) and p for p in prompts)
    assert f"{count} scenes" in plan_text and plan_job != job_id
    prompt, narration, duration = run("3DLabsSceneSelect", scene_plan=plan, index=2)
    assert prompt == prompts[1] and isinstance(narration, str) and duration == plan.scenes[1].duration > 0
    with pytest.raises(errors.ValidationError):
        run("3DLabsSceneSelect", scene_plan=plan, index=count + 1)
    assert jobs_created(sandbox) == {"story": 1, "scene-planning": 1}


def test_scene_plan_accepts_story_json_text(sandbox):
    story_json = json.dumps({"title": "Clocks", "beats": [{"narration": "A fox finds a clock."}]})
    plan, prompts, count, *_ = run("3DLabsScenePlan", story=story_json, max_minutes=1, seed=0, unique_id="2")
    assert count == len(prompts) > 0


def decode(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0)


def test_eight_prompts_make_eight_jobs_and_one_ordered_batch(sandbox):
    prompts = [f"scene {i}: a lighthouse, shot {i}" for i in range(8)]
    images, masks, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts))
    assert images.shape == (8, 768, 1344, 3) and images.dtype == torch.float32
    assert masks.shape == (8, 768, 1344)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    ids = job_ids.split("\n")
    assert len(ids) == len(set(ids)) == 8
    assert jobs_created(sandbox) == {"image": 8}
    journal = Journal()
    client = clients.client_for()
    for i, jid in enumerate(ids):
        assert journal.find(jid)["label"] == prompts[i]
        ref = client.image_refs_of(client.get_job(jid))[0]
        assert torch.allclose(images[i], decode(client.fetch_image(ref)), atol=1 / 255)
    assert not torch.equal(images[0], images[1])


def test_list_items_are_numbered_as_scenes():
    generate = pack_module("nodes.generate")
    assert generate.scene_numbers(3, 0) == [1, 2, 3]
    assert generate.scene_numbers(1, 0) == [None]
    assert generate.scene_numbers(2, 5) == [5, 6]
    bodies = generate.build_bodies(["a", "b"], "replicate", "flux-dev", "1:1", "", 0)
    assert [b["sceneNumber"] for b in bodies] == [1, 2] and "projectId" not in bodies[0]
    assert bodies[0] == {"prompt": "a", "provider": "replicate", "model": "flux-dev", "aspectRatio": "1:1",
                         "sceneNumber": 1}


@pytest.mark.parametrize("bad", [
    dict(prompts=[]), dict(prompts=["ok", "   "]), dict(prompts=["ok"], aspect_ratio="2:1"),
    dict(prompts=["ok"], provider="midjourney"), dict(prompts=["ok"], model="bad model name"),
])
def test_validation_errors_make_no_job(sandbox, bad):
    prompts = bad.pop("prompts")
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsImageGenerate", **image_args(prompts, **bad))
    assert "nothing was submitted" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0


def test_validate_inputs_hooks_refuse_before_queueing():
    assert N["3DLabsStory"].VALIDATE_INPUTS(topic="  ") != True  # noqa: E712
    assert N["3DLabsStory"].VALIDATE_INPUTS(topic="ok") is True
    assert "prompt" in N["3DLabsImageGenerate"].VALIDATE_INPUTS(prompt=[" "])
    assert N["3DLabsImageGenerate"].VALIDATE_INPUTS(prompt=["a kite"]) is True
    assert N["3DLabsLoadProject"].VALIDATE_INPUTS(project_id=" ") != True  # noqa: E712


def test_story_validation_makes_no_job(sandbox):
    for kwargs in (dict(topic="", max_minutes=1), dict(topic="x", max_minutes=6)):
        with pytest.raises(errors.ValidationError):
            run("3DLabsStory", provider="gemini", seed=0, **kwargs)
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsScenePlan", story="{broken json", max_minutes=1, seed=0)
    assert "not valid JSON" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0


def test_failing_job_raises_an_error_naming_its_id(sandbox):
    with pytest.raises(errors.BatchError) as info:
        run("3DLabsImageGenerate", **image_args(["fine", "this will FAIL", "also fine"]))
    failure = info.value.failures[0]
    assert failure.job_id in str(info.value) and failure.index == 1 and "item 2" in str(info.value)
    assert "reused without paying again" in str(info.value)
    # Queue again: the two finished images are reused; only the failed one is submitted anew.
    with pytest.raises(errors.BatchError):
        run("3DLabsImageGenerate", **image_args(["fine", "this will FAIL", "also fine"]))
    assert sandbox.stats()["jobs_created"]["image"] == 4


def test_single_failing_job(sandbox):
    with pytest.raises(errors.JobFailedError) as info:
        run("3DLabsImageGenerate", **image_args(["FAIL now"]))
    jid = info.value.job_id
    assert jid and jid in str(info.value) and Journal().find(jid)["state"] == "failed"


def test_wait_off_then_job_wait_collects(sandbox):
    image, mask, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(["one", "two", "three"], wait=False))
    assert image.shape == (1, 64, 64, 3) and len(job_ids.split("\n")) == 3
    result_json, images, text = run("3DLabsJobWait", job_id=[job_ids], timeout_seconds=[60], unique_id=["9"])
    assert images.shape == (3, 768, 1344, 3)
    payload = json.loads(result_json)
    assert [p["id"] for p in payload] == job_ids.split("\n") and all(p["status"] == "succeeded" for p in payload)
    assert jobs_created(sandbox) == {"image": 3}


def test_job_wait_after_restart_needs_only_the_id(sandbox):
    image, mask, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(["kite"], wait=False))
    clients.reset_clients()  # a new process knows nothing but the id
    _, images, _ = run("3DLabsJobWait", job_id=[f" {job_ids} ,"], timeout_seconds=[60])
    assert images.shape == (1, 768, 1344, 3)


def test_job_wait_on_a_story_gives_text(sandbox):
    _, text, job_id = run("3DLabsStory", topic="Owls at night", max_minutes=1, provider="claude", seed=0)
    result_json, images, wait_text = run("3DLabsJobWait", job_id=[job_id], timeout_seconds=[60])
    assert wait_text == text and images.shape == (1, 64, 64, 3)
    assert json.loads(result_json)["id"] == job_id


def test_job_wait_rejects_empty_input(sandbox):
    with pytest.raises(errors.ValidationError):
        run("3DLabsJobWait", job_id=["  ,\n"], timeout_seconds=[5])


def test_same_inputs_reuse_new_seed_submits(sandbox):
    first = run("3DLabsImageGenerate", **image_args(["a paper boat"]))
    clients.reset_clients()
    again = run("3DLabsImageGenerate", **image_args(["a paper boat"]))
    assert again[2] == first[2] and torch.equal(again[0], first[0])
    assert sandbox.stats()["jobs_created"]["image"] == 1
    assert spend.tally().reused == 1
    run("3DLabsImageGenerate", **image_args(["a paper boat"], seed=1))
    assert sandbox.stats()["jobs_created"]["image"] == 2


def test_interrupt_stops_waiting_quickly_and_keeps_the_job(sandbox):
    t0 = time.monotonic()
    with cancel_after(0.8), pytest.raises(comfy.LocalInterrupted):
        run("3DLabsImageGenerate", **image_args(["HANG please"]))
    # Stopped although the job hangs forever (a liveness bound only: the half second is measured by the
    # real-ComfyUI suite and the benchmark, where the machine's load cannot be mistaken for the pack's).
    assert time.monotonic() - t0 < 30
    [rec] = Journal().recent(5)
    assert rec["state"] == "submitted" and rec["kind"] == "image"


def test_load_project_projects_and_recent_jobs(sandbox):
    story, plan, images, project_json = run("3DLabsLoadProject", project_id="proj_demo")
    assert story.text and len(plan.scenes) == 4 and images.shape[0] == 4 and images.shape[-1] == 3
    assert json.loads(project_json)["id"] == "proj_demo"
    (text,) = run("3DLabsProjects", refresh=0)
    assert "proj_demo" in text
    run("3DLabsImageGenerate", **image_args(["x"], wait=False))
    text, ids = run("3DLabsRecentJobs", limit=5)
    assert "image" in text and "submitted" in text and len(ids.split("\n")) == 1
    with pytest.raises(errors.NotFoundError) as info:
        run("3DLabsLoadProject", project_id="proj_missing")
    message = str(info.value)  # the id, where it looked, and how to list the projects
    assert "proj_missing" in message and "workspace" in message and "3DLabs Projects" in message


def test_job_cap_refuses_sixty_prompts_and_names_the_count(sandbox):
    with pytest.raises(errors.JobCapError) as info:
        run("3DLabsImageGenerate", **image_args([f"p{i}" for i in range(60)]))
    message = str(info.value)
    assert "60 jobs" in message and "50" in message and "THREEDLABS_MAX_JOBS" in message
    assert "3DLabs Image Generate" in message
    assert sandbox.stats()["requests_total"] == 0


def test_cap_can_be_raised(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_MAX_JOBS", "3")
    with pytest.raises(errors.JobCapError):
        run("3DLabsImageGenerate", **image_args(["a", "b", "c", "d"]))
    monkeypatch.setenv("THREEDLABS_MAX_JOBS", "4")
    spend.reset_tallies()
    assert run("3DLabsImageGenerate", **image_args(["a", "b", "c", "d"]))[0].shape[0] == 4


def test_dry_run_of_the_full_chain_spends_nothing(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_DRY_RUN", "1")
    story, text, job_id = run("3DLabsStory", topic="Dry topic", max_minutes=2, provider="gemini", seed=0)
    assert "DRY RUN" in text and "/api/claude/stories" in text and job_id == "dry-run"
    plan, prompts, count, plan_text, _, *_per_scene = run("3DLabsScenePlan", story=story, max_minutes=2, seed=0)
    assert count == len(prompts) == 8
    images, masks, ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts, aspect_ratio="9:16"))
    assert images.shape == (8, 1344, 768, 3) and masks.shape == (8, 1344, 768)
    assert sandbox.stats()["requests_total"] == 0
    assert spend.tally().dry_run == 10
    assert "dry run" in spend.tally().line()


def test_summary_counts_match_the_sandbox(sandbox):
    story, *_ = run("3DLabsStory", topic="Summary", max_minutes=1, provider="gemini", seed=0)
    with pytest.raises(errors.BatchError):
        run("3DLabsImageGenerate", **image_args(["a", "b FAIL", "c"]))
    t = spend.tally()
    stats = sandbox.stats()["jobs_created"]
    assert t.submitted == {"story": stats["story"], "image": stats["image"]}
    assert (t.succeeded, t.failed, t.reused) == (3, 1, 0)
    assert t.line() == ("3DLabs jobs this prompt: submitted 3 image, 1 story; succeeded 3, failed 1, reused 0")


def _first_download_while(sandbox, prompts=None, **node_inputs):
    """Run Image Generate on ``prompts`` (or the node given by ``node_inputs``); return its outputs and
    the epoch time of the first image request the sandbox saw (observed within 10 ms, so never
    earlier than it happened)."""
    out: dict = {}
    before = sandbox.stats()["file_requests"]
    node_id, inputs = node_inputs.pop("node", "3DLabsImageGenerate"), node_inputs or image_args(prompts)
    node = threading.Thread(target=lambda: out.update(result=run(node_id, **inputs)))
    node.start()
    first_seen = None
    while node.is_alive():
        if first_seen is None and sandbox.stats()["file_requests"] > before:
            first_seen = time.time()
        time.sleep(0.01)
    node.join()
    return out["result"], first_seen


def test_image_generate_fetches_each_image_as_its_job_finishes(sandbox):
    # "SLOW" makes the sandbox's job take 10x: 4 s against 0.4 s. The quick job's image is fetched
    # while the slow one still runs, not after the whole list is done.
    sandbox.job_seconds = 0.4
    (images_out, _, job_ids, _image_list), first_seen = _first_download_while(sandbox, ["a kite", "SLOW a lighthouse"])
    job_ids = job_ids.split("\n")
    assert tuple(images_out.shape) == (2, 768, 1344, 3)
    assert first_seen is not None and first_seen < sandbox.job_finish_time(job_ids[1]) - 1.0
    assert sandbox.stats()["file_requests"] == 2  # each image fetched once


def test_image_generate_fetches_a_reused_image_before_waiting(sandbox):
    sandbox.job_seconds = 0.4
    # Scene 1 is paid for by the first run; the second run reuses it and adds a slow scene 2.
    kite = run("3DLabsImageGenerate", **image_args(["a kite", "a boat"]))[2].split("\n")[0]
    (images_out, _, job_ids, _image_list), first_seen = _first_download_while(sandbox, ["a kite", "SLOW a lighthouse"])
    job_ids = job_ids.split("\n")
    assert job_ids[0] == kite and tuple(images_out.shape) == (2, 768, 1344, 3)
    assert first_seen is not None and first_seen < sandbox.job_finish_time(job_ids[1]) - 1.0
    assert jobs_created(sandbox) == {"image": 3} and sandbox.stats()["file_requests"] == 4


def test_job_wait_fetches_each_image_job_as_it_finishes(sandbox):
    # Submitted with wait off, collected by Job Wait while they run: the quick job's image is
    # fetched before the SLOW one (10x) ends.
    sandbox.job_seconds = 0.4
    ids = run("3DLabsImageGenerate", **image_args(["a kite", "SLOW a lighthouse"], wait=False))[2]
    ids = ids.split("\n") if isinstance(ids, str) else list(ids)
    (_, images_out, _), first_seen = _first_download_while(
        sandbox, node="3DLabsJobWait", job_id=["\n".join(ids)], timeout_seconds=[60])
    assert tuple(images_out.shape) == (2, 768, 1344, 3)
    assert first_seen is not None and first_seen < sandbox.job_finish_time(ids[1]) - 1.0
    assert sandbox.stats()["file_requests"] == 2


@pytest.fixture
def decode_times(monkeypatch):
    """Epoch times at which each batch slot's image was decoded, as (slot, time)."""
    images_mod, seen = pack_module("nodes.images"), []
    decode = images_mod.decode

    def spy(data, **kw):
        seen.append((int(re.search(r"batch index (\d+)", kw["source"]).group(1)), time.time()))
        return decode(data, **kw)

    monkeypatch.setattr(images_mod, "decode", spy)
    return seen


def test_image_generate_decodes_each_image_as_it_arrives(sandbox, decode_times):
    # Each image is decoded in the worker that waited for its job, as soon as that job ends: the quick
    # one while the SLOW one (10x) still runs, whichever place it has in the batch; nothing twice.
    sandbox.job_seconds = 0.4
    for prompts, quick in ((["SLOW a lighthouse", "a kite"], 1), (["a kite", "SLOW a boat"], 0)):
        decode_times.clear()
        images_out, _, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts))
        job_ids = job_ids.split("\n")
        assert tuple(images_out.shape) == (2, 768, 1344, 3)
        assert sorted(slot for slot, _ in decode_times) == [0, 1]
        assert dict(decode_times)[quick] < sandbox.job_finish_time(job_ids[1 - quick]) - 1.0
    want = images_out.clone()
    # The same jobs again: reused (nothing new is paid for), same tensors.
    again = run("3DLabsImageGenerate", **image_args(["a kite", "SLOW a boat"]))[0]
    assert torch.equal(again, want) and jobs_created(sandbox) == {"image": 4}


def test_job_wait_decodes_each_image_job_as_it_finishes(sandbox, decode_times):
    sandbox.job_seconds = 0.4
    ids = run("3DLabsImageGenerate", **image_args(["a kite", "SLOW a lighthouse"], wait=False))[2]
    ids = ids.split("\n") if isinstance(ids, str) else list(ids)
    _, images_out, _ = run("3DLabsJobWait", job_id=["\n".join(ids)], timeout_seconds=[60])
    assert tuple(images_out.shape) == (2, 768, 1344, 3)
    assert sorted(slot for slot, _ in decode_times) == [0, 1]
    assert dict(decode_times)[0] < sandbox.job_finish_time(ids[1]) - 1.0



def test_job_wait_gives_an_id_it_never_saw_only_a_short_grace(sandbox):
    # Not in the journal: pasted or mistyped. 3DLabs answers 404; the node says so after a short
    # grace (2 s), not the 15 s that covers jobs this pack created a moment ago.
    wait_mod = pack_module("nodes.wait")
    assert wait_mod.UNKNOWN_ID_GRACE_SECONDS < pack_module("nodes.api.jobs").NOT_FOUND_GRACE_SECONDS
    with pytest.raises(errors.JobFailedError) as info:
        run("3DLabsJobWait", job_id=["job_0000000000c0ffee"], timeout_seconds=[60])
    assert "does not know" in str(info.value) and "job_0000000000c0ffee" in str(info.value)
    polls = sandbox.stats()["requests"]["GET /api/jobs"]
    # Polls come at least 0.25 s apart: 2 s of grace allows about 9; the full 15 s would take over 30.
    assert 2 <= polls <= 12


def test_job_wait_reports_a_long_gone_journaled_job_at_once(sandbox):
    # Journaled two minutes ago, unknown to 3DLabs now: no 15 s grace for eventual consistency.
    journal_events({"event": "submitted", "id": "job_00000000deadbeef", "kind": "image", "time": time.time() - 120,
                    "request": "x"})
    with pytest.raises(errors.JobFailedError) as info:
        run("3DLabsJobWait", job_id=["job_00000000deadbeef"], timeout_seconds=[60])
    assert "does not know" in str(info.value) and "job_00000000deadbeef" in str(info.value)
    assert sandbox.stats()["requests"]["GET /api/jobs"] == 1


def test_validate_inputs_take_one_input_each_and_comfyui_checks_the_rest():
    """ComfyUI pins a VALIDATE_INPUTS message on every input the method takes, so each takes one; the
    inputs it leaves out must be ones ComfyUI checks itself (a number's range or a list of choices)."""
    import inspect

    for node_id, cls in N.items():
        if not hasattr(cls, "VALIDATE_INPUTS"):
            continue
        taken = [p for p in inspect.signature(cls.VALIDATE_INPUTS).parameters if p not in ("cls", "self")]
        assert len(taken) == 1, (node_id, taken)
        spec = cls.INPUT_TYPES()
        for name, (kind, *opts) in {**spec["required"], **spec.get("optional", {})}.items():
            if name in taken or kind not in ("INT", "FLOAT"):
                continue
            assert {"min", "max"} <= set(opts[0]), (node_id, name)


def test_text_only_nodes_are_output_nodes():
    for node_id in ("3DLabsProjects", "3DLabsRecentJobs"):
        assert N[node_id].OUTPUT_NODE is True


def test_the_cap_message_says_which_nodes_already_spent_and_that_this_one_sent_nothing(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_MAX_JOBS", "3")
    run("3DLabsStory", topic="A fox who repairs clocks", max_minutes=1, provider="gemini", seed=0)
    before = sandbox.stats()["requests_total"]
    with pytest.raises(errors.JobCapError) as info:
        run("3DLabsImageGenerate", **image_args(["a", "b", "c"]))
    message = str(info.value)
    assert "3DLabs Image Generate would submit 3 jobs" in message and "submitted none of them" in message
    assert "already took 1 of the cap" in message and "3DLabs Story 1" in message
    assert "nothing was submitted" not in message  # the Story was submitted: no contradiction
    assert sandbox.stats()["requests_total"] == before


def test_scene_plan_hands_out_per_scene_lists_and_a_new_frame_rule_pays_nothing(sandbox):
    story = run("3DLabsStory", topic="A fox who collects clocks", max_minutes=1, provider="gemini", seed=0)[0]
    out = run("3DLabsScenePlan", story=story, max_minutes=1, seed=0, clip_fps=16.0, frame_rule="4n+1")
    plan, narrations, durations, counts = out[0], out[5], out[6], out[7]
    assert narrations == [s.narration for s in plan.scenes] and any(narrations)
    assert durations == [float(s.duration) for s in plan.scenes]
    for seconds, frames in zip(durations, counts):
        assert frames % 4 == 1 and frames / 16.0 >= seconds - 1 / 32 and (frames - 4) / 16.0 < seconds
    again = run("3DLabsScenePlan", story=story, max_minutes=1, seed=0, clip_fps=24.0, frame_rule="8n+1")
    assert all(f % 8 == 1 for f in again[7]) and again[0].job_id == plan.job_id
    assert jobs_created(sandbox) == {"story": 1, "scene-planning": 1}  # the frame rule is not sent: no new job
    with pytest.raises(errors.ValidationError, match="frame_rule must be one of"):
        run("3DLabsScenePlan", story=story, max_minutes=1, seed=0, frame_rule="12n")


@pytest.mark.parametrize(("seconds", "fps", "rule", "frames"), [
    (2.0, 16.0, "4n+1", 33), (2.0, 16.0, "8n+1", 33), (2.0, 16.0, "N", 32), (1.0, 24.0, "4n+1", 25),
    (1.0, 24.0, "8n+1", 25), (5.0, 24.0, "8n+1", 121), (0.01, 16.0, "4n+1", 1), (None, 16.0, "N", 1),
])
def test_frame_counts_follow_the_video_models_rules(seconds, fps, rule, frames):
    assert pack_module("nodes.scenes").frame_count(seconds, fps, rule) == frames


def test_image_generate_hands_out_its_images_as_a_list_too(sandbox):
    batch, _, ids, listed = run("3DLabsImageGenerate", **image_args(["a kite", "a boat", "a lighthouse"]))
    assert len(listed) == 3 == batch.shape[0] and all(item.shape == (1, *batch.shape[1:]) for item in listed)
    for index, item in enumerate(listed):
        assert torch.equal(item[0], batch[index])
        assert item.untyped_storage().data_ptr() == batch.untyped_storage().data_ptr()  # views, not copies
