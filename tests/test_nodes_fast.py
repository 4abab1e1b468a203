"""Node behaviour with a fake client (tests/fake_client.py), where HTTP adds nothing: order, reuse, the
cap, dry run, failures naming their jobs, Cancel, previews. The same behaviours over real HTTP against
the sandbox are in test_nodes.py and the reliability and security suites."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from fake_client import install

from conftest import pack_module
from node_runner import cancel_after, image_args, run

errors = pack_module("nodes.api.errors")
comfy = pack_module("nodes.comfy")
clients = pack_module("nodes.clients")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal


@pytest.fixture
def fake(monkeypatch, fast_polls):
    spend.reset_tallies()
    comfy.set_local_interrupt(False)
    client = install(monkeypatch)
    yield client
    client.release.set()
    comfy.set_local_interrupt(False)


@pytest.fixture
def previews(monkeypatch):
    seen = []
    monkeypatch.setattr(comfy, "preview", lambda node_id, image, done, total: seen.append((image, done, total)))
    return seen


def u8(rgb):
    return torch.tensor([v / 255 for v in rgb], dtype=torch.float32)


def test_images_come_back_in_prompt_order_with_one_preview_each_as_its_job_finishes(fake, previews, monkeypatch):
    # The first prompt's status request hangs until the other three images were previewed: previews
    # must not wait for prompt order, and the batch must still come back in prompt order.
    prompts = ["BLOCK a", "POLLS=2 b", "POLLS=5 c", "POLLS=1 d"]
    show = comfy.preview
    monkeypatch.setattr(comfy, "preview", lambda *a: (show(*a), len(previews) == 3 and fake.release.set()))
    deadline = threading.Timer(20, fake.release.set)  # a pack that previews in prompt order fails, not hangs
    deadline.start()
    try:
        images, masks, ids, _image_list = run("3DLabsImageGenerate", **image_args(prompts))
    finally:
        deadline.cancel()
    assert ids.split("\n") == [fake.id_of(p) for p in prompts]
    assert images.shape == (4, 36, 64, 3) and masks.shape == (4, 36, 64) and not masks.any()
    for i, prompt in enumerate(prompts):
        assert torch.allclose(images[i, 0, 0], u8(fake.colour_of(prompt)), atol=1e-6)
    assert [done for _, done, _ in previews] == [1, 2, 3, 4] and {t for *_, t in previews} == {4}
    shown = [img.getpixel((0, 0)) for img, *_ in previews]
    assert sorted(shown[:3]) == sorted(fake.colour_of(p) for p in prompts[1:])
    assert shown[3] == fake.colour_of("BLOCK a")
    assert all(max(img.size) <= comfy.preview_size() and img.mode == "RGB" for img, *_ in previews)


def test_the_same_inputs_again_reuse_every_job_and_pay_nothing(fake):
    first = run("3DLabsImageGenerate", **image_args(["a", "b", "c"]))[0]
    spend.reset_tallies()
    again = run("3DLabsImageGenerate", **image_args(["a", "b", "c"]))[0]
    assert torch.equal(first, again) and len(fake.posts) == 3
    t = spend.tally()
    assert (t.reused, t.submitted) == (3, {})
    assert fake.fetches.count(fake.id_of("a")) == 2  # a reused job's image is fetched again, never paid again


def test_a_list_over_the_cap_is_refused_before_any_thread_or_post(fake, monkeypatch):
    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self, *a, **k: (started.append(self.name),
                                                                         real_start(self, *a, **k))[1])
    with pytest.raises(errors.JobCapError) as info:
        run("3DLabsImageGenerate", **image_args([f"p{i}" for i in range(60)]))
    assert "60 jobs" in str(info.value) and "3DLabs Image Generate" in str(info.value)
    assert fake.posts == [] and not [n for n in started if n.startswith("3dlabs")]


def test_a_dry_run_posts_nothing_and_says_so(fake, monkeypatch):
    monkeypatch.setenv("THREEDLABS_DRY_RUN", "1")
    images, masks, ids, _image_list = run("3DLabsImageGenerate", **image_args(["a", "b"]))
    assert images.shape == (2, 768, 1344, 3) and ids == "dry-run\ndry-run"
    story, text, job_id = run("3DLabsStory", topic="x", max_minutes=1, provider="gemini", seed=0)
    assert "DRY RUN" in text and job_id == "dry-run"
    assert fake.posts == [] and spend.tally().dry_run == 3


def test_one_failed_job_of_several_is_a_batch_error_naming_it_after_every_job_ended(fake):
    with pytest.raises(errors.BatchError) as info:
        run("3DLabsImageGenerate", **image_args(["POLLS=1 a", "FAIL b", "POLLS=6 c"]))
    message = str(info.value)
    assert fake.id_of("FAIL b") in message and "item 2" in message and "reused without paying again" in message
    assert set(fake.finished) == set(fake.jobs)  # the slow one was waited for too
    states = {rec["id"]: rec["state"] for rec in Journal().recent(5)}
    assert states == {fake.id_of("POLLS=1 a"): "succeeded", fake.id_of("FAIL b"): "failed",
                      fake.id_of("POLLS=6 c"): "succeeded"}
    t = spend.tally()
    assert (t.succeeded, t.failed) == (2, 1)


def test_a_single_failed_job_is_its_own_error(fake):
    with pytest.raises(errors.JobFailedError) as info:
        run("3DLabsImageGenerate", **image_args(["FAIL a"]))
    assert info.value.job_id == "job_0000" and "model refused" in str(info.value)


def test_a_damaged_image_names_its_job_and_the_others_are_still_collected(fake):
    with pytest.raises(errors.ImageDecodeError) as info:
        run("3DLabsImageGenerate", **image_args(["a", "BROKEN b", "POLLS=5 c"]))
    assert fake.id_of("BROKEN b") in str(info.value) and "HTML" in str(info.value)
    assert len(fake.jobs) == 3 and set(fake.finished) == set(fake.jobs)


def test_a_failed_post_is_reported_after_the_submitted_jobs_are_collected(fake):
    with pytest.raises(errors.ServerError) as info:
        run("3DLabsImageGenerate", **image_args(["a", "NOSUBMIT b", "c"]))
    assert "item 2 of 3" in str(info.value) and "2 job(s) that were submitted" in str(info.value)
    assert set(fake.finished) == {fake.id_of("a"), fake.id_of("c")}
    spend.reset_tallies()  # queueing again pays only for what is missing
    with pytest.raises(errors.ServerError):
        run("3DLabsImageGenerate", **image_args(["a", "NOSUBMIT b", "c"]))
    assert len(fake.posts) == 2


def test_cancel_ends_the_node_while_a_status_request_hangs(fake):
    began = time.monotonic()
    with cancel_after(0.3), pytest.raises(comfy.LocalInterrupted):
        run("3DLabsImageGenerate", **image_args(["BLOCK HANG a", "HANG b"]))
    assert time.monotonic() - began < 30  # liveness only; the request itself is still hanging
    assert not fake.release.is_set()
    assert {rec["state"] for rec in Journal().recent(5)} == {"submitted"}  # both stay collectable


def test_wait_off_then_job_wait_collects_images_and_text_in_order(fake, previews):
    ids = run("3DLabsImageGenerate", **image_args(["POLLS=4 a", "b"], wait=False))[2]
    story = run("3DLabsStory", topic="a story", max_minutes=1, provider="gemini", seed=0)[2]
    result_json, images, text = run("3DLabsJobWait", job_id=[f"{ids}\n{story}"], timeout_seconds=[60],
                                    unique_id=["9"])
    assert images.shape == (2, 36, 64, 3) and torch.allclose(images[1, 0, 0], u8(fake.colour_of("b")), atol=1e-6)
    assert f"job {fake.id_of('POLLS=4 a')}: image" in text and "a story" in text
    assert len(previews) == 2 and len(fake.posts) == 3


def test_settings_are_read_once_per_run(fake, monkeypatch):
    calls = []
    real = clients.settings
    monkeypatch.setattr(clients, "settings", lambda: calls.append(1) or real())
    run("3DLabsImageGenerate", **image_args(["a", "b"]))
    run("3DLabsStory", topic="a story", max_minutes=1, provider="gemini", seed=0)
    assert len(calls) == 2
