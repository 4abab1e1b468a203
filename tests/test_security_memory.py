"""Memory and hangs (issue 22): what hostile answers, image hosts and shared projects cannot make the pack do.

Each case plays the attack over real HTTP (the sandbox, or a small server playing a shared project):
results and projects of 8000x8000 PNGs that are 190 KB on the wire, a scene lasting 1e7 or 1e8 seconds
through the shipped "Project to video" (Load Project -> Storyboard Video), an ICO whose directory says
16x16 around a 144 Mpx PNG, and an API that drips its answer to Load Project. Peak memory is measured in a
fresh interpreter (VmHWM, reset first, over the RSS before the node ran); a guard ends the probe early
when it passes a cap far above the limit, so that an unguarded pack fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from fake_comfyui import install
from fixtures_images import animated_gif, encode, large_png, png, solid
from scripted_server import ScriptedServer, js, raw

from conftest import pack_module
from node_runner import run
from reliability_report import report

images = pack_module("nodes.images")
errors = pack_module("nodes.api.errors")
config = pack_module("nodes.api.config")
download = pack_module("nodes.api.download")
plan_mod = pack_module("nodes.storyboard.timeline_plan")
client_mod = pack_module("nodes.api.client")
run_mod = pack_module("nodes.run")

pytestmark = pytest.mark.usefixtures("fresh_runtime")
TESTS_DIR = Path(__file__).resolve().parent
GB = 10**9
MB = 10**6
needs_proc = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")

PROBE = """
import json, os, sys, threading, time
sys.path.insert(0, {tests!r})
import torch
from conftest import pack_module
from node_runner import image_args, run
from fixtures_images import ico_around, large_png
pack_module("nodes.api.client"); pack_module("nodes.storyboard.video")  # imported before the measurement, as in ComfyUI
images = pack_module("nodes.images")

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key + ":"))

{setup}
open("/proc/self/clear_refs", "w").write("5")  # the peak of the imports and the setup is not the node's
before = status("VmRSS")

def guard():
    while True:
        if status("VmRSS") - before > {cap}:
            print(json.dumps({{"error": "over the probe's cap", "growth": status("VmHWM") - before}}), flush=True)
            os._exit(3)
        time.sleep(0.01)

threading.Thread(target=guard, daemon=True).start()
out = {{"error": None, "message": ""}}
try:
{body}
except BaseException as exc:
    out = {{"error": type(exc).__name__, "message": str(exc)}}
out["growth"] = status("VmHWM") - before
print(json.dumps(out), flush=True)
os._exit(0)
"""


def probe(body: str, *, setup: str = "", cap: int = 3 * GB) -> dict:
    """Run ``body`` in a fresh interpreter (environment as the test has it): what it raised and its peak growth."""
    script = PROBE.format(tests=str(TESTS_DIR), setup=textwrap.dedent(setup), cap=cap,
                          body=textwrap.indent(textwrap.dedent(body), "    "))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    out = json.loads(lines[-1])
    report(f"memory probe {os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}", error=out["error"],
           peak_growth_mib=round(out["growth"] / 2**20))
    return out


@pytest.fixture
def large_results(monkeypatch):
    """An API whose every result and project image is an 8000x8000 PNG of 190 KB (64 Mpx, 1 GB as IMAGE):
    eight image jobs, done at once, and the project proj_demo of four scenes."""
    big = large_png(8000, 8000)
    assert len(big) < 200_000
    server = ScriptedServer()
    server.on("POST", "/api/images/generate", *(js({"jobId": f"job_big{k}"}) for k in range(8)))
    for k in range(8):
        server.on("GET", f"/api/jobs/job_big{k}", js({"status": "completed", "progress": 100,
                                                       "result": {"imageUrl": f"{server.origin}/files/{k}.png"}}))
        server.on("GET", f"/files/{k}.png", raw(big, content_type="image/png"))
    scenes = [{"sceneNumber": k, "imagePrompt": f"scene {k}", "duration": 5,
               "imageUrl": f"{server.origin}/files/{k}.png"} for k in range(1, 5)]
    server.on("GET", "/api/session/proj_demo", js({"id": "proj_demo", "name": "Demo", "scenePlan": {"scenes": scenes}}))
    monkeypatch.setenv("THREEDLABS_BASE_URL", server.api_url)
    monkeypatch.setenv("THREEDLABS_TOKEN", "large-results-test-token")
    yield server
    server.stop()


# --- the budget of decoded pixels -------------------------------------------------------------------


@needs_proc
def test_eight_results_of_8000x8000_pngs_are_refused_before_decoding_past_the_budget(large_results):
    prompts = [f"a lighthouse, take {k}" for k in range(8)]
    out = probe(f"run('3DLabsImageGenerate', **image_args({prompts!r}))")
    assert out["error"] == "PixelBudgetError", out  # unguarded: 8 GB of IMAGE, 6.3 GB measured before the budget
    assert "past the budget of 100 Mpx" in out["message"] and "THREEDLABS_MAX_DECODED_MEGAPIXELS" in out["message"]
    assert "64.0 Mpx" in out["message"] or "512.0 Mpx" in out["message"], out["message"]
    assert out["growth"] < 1.5 * GB, f"peak +{out['growth'] / MB:.0f} MB"
    assert large_results.count("POST", "/api/images/generate") == 8  # nothing paid twice: collected on a re-run


@needs_proc
def test_a_shared_project_of_8000x8000_pngs_is_refused_before_decoding_past_the_budget(large_results):
    out = probe("run('3DLabsLoadProject', project_id='proj_demo')")
    assert out["error"] == "PixelBudgetError", out
    assert "project proj_demo" in out["message"] or "a batch of 4 images" in out["message"], out["message"]
    assert "100 Mpx" in out["message"] and "THREEDLABS_MAX_DECODED_MEGAPIXELS" in out["message"]
    assert out["growth"] < 1.5 * GB, f"peak +{out['growth'] / MB:.0f} MB"


def test_the_budget_is_a_setting_and_its_error_says_how_to_raise_it(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_MAX_DECODED_MEGAPIXELS", "2")  # the demo's 1344x768 images: 1.03 Mpx each
    with pytest.raises(errors.PixelBudgetError) as info:
        run("3DLabsLoadProject", project_id="proj_demo")
    message = str(info.value)
    assert "past the budget of 2 Mpx" in message and "Raise THREEDLABS_MAX_DECODED_MEGAPIXELS (now 2)" in message
    assert "1344x768" in message or "a batch of 4 images" in message
    monkeypatch.setenv("THREEDLABS_MAX_DECODED_MEGAPIXELS", "5")
    assert run("3DLabsLoadProject", project_id="proj_demo")[2].shape == (4, 768, 1344, 3)
    monkeypatch.delenv("THREEDLABS_MAX_DECODED_MEGAPIXELS")
    assert config.load_settings().max_decoded_megapixels == config.DEFAULT_MAX_DECODED_MEGAPIXELS == 100


def test_once_the_budget_is_spent_nothing_more_is_downloaded():
    batch = images.Batch(3, images.PixelBudget(1))
    fetched = []

    def fetch(k):
        fetched.append(k)
        return png((k, 0, 0), (1000, 1000))

    batch.decode(lambda: fetch(0), source="image 0")  # 1.0 Mpx: all of the budget
    with pytest.raises(errors.PixelBudgetError, match="image 1.*1000x1000.*2.0 Mpx, past the budget of 1 Mpx"):
        batch.decode(lambda: fetch(1), source="image 1")
    with pytest.raises(errors.PixelBudgetError, match="image 1"):  # the same refusal, and no download
        batch.decode(lambda: fetch(2), source="image 2")
    assert fetched == [0, 1]


def test_a_batch_laid_out_at_a_large_first_size_is_refused_before_it_is_made():
    # Every picture is resized to the first one's size: 8 tiny pictures after a large one are 8 large slots.
    batch = images.Batch(8, images.PixelBudget(3))
    with pytest.raises(errors.PixelBudgetError, match=r"a batch of 8 images at the first one's size, 1000x1000"):
        batch.put(0, [images.decode(png((1, 2, 3), (1000, 1000)))])
    assert batch.images is None


# --- only the formats 3DLabs sends are opened ------------------------------------------------------------


@needs_proc
def test_an_ico_around_a_large_png_is_refused_before_decoding():
    """The directory says 16x16, the PNG inside is 12000x12000 (144 Mpx): opened as an ICO, Pillow decodes it
    inside Image.open, before any size is checked."""
    out = probe("images.decode(data, source='result 1')", setup="data = ico_around(large_png(12000, 12000))",
                cap=1 * GB)
    assert out["error"] == "ImageDecodeError", out
    assert "result 1: a file in ICO format" in out["message"] and "only PNG, JPEG and WebP" in out["message"]
    assert out["growth"] < 50 * MB, f"peak +{out['growth'] / MB:.0f} MB"


@pytest.mark.parametrize(("fmt", "data"), [
    ("GIF", lambda: animated_gif([(255, 0, 0), (0, 0, 255)])),
    ("BMP", lambda: encode(solid((1, 2, 3)), "BMP")),
    ("TIFF", lambda: encode(solid((1, 2, 3)), "TIFF")),
])
def test_formats_3dlabs_never_sends_are_refused_by_name(fmt, data):
    with pytest.raises(errors.ImageDecodeError, match=f"scene 2: a file in {fmt} format .*only PNG, JPEG and WebP"):
        images.decode(data(), source="scene 2")
    assert images.decode(data(), formats=None).array.ndim == 3  # opened only when a caller asks for any format


def test_the_formats_3dlabs_sends_still_open():
    for fmt in ("PNG", "JPEG", "WEBP"):
        assert images.decode(encode(solid((10, 200, 30)), fmt)).format == fmt


# --- scene durations ---------------------------------------------------------------------------------------


@pytest.fixture
def long_project(monkeypatch):
    """A shared project whose one scene lasts ``long_project.seconds``, as a collaborator could save it."""
    server = ScriptedServer()
    server.seconds = 1.0

    def project(_body):
        scenes = [{"sceneNumber": 1, "imagePrompt": "a long night", "duration": server.seconds,
                   "imageUrl": f"{server.origin}/img/1.png"}]
        return js({"id": "p_long", "name": "Long", "story": {"title": "Long"}, "scenePlan": {"scenes": scenes}})

    server.on("GET", "/api/session/p_long", project)
    server.on("GET", "/img/1.png", raw(png((200, 40, 40), (64, 36)), content_type="image/png"))
    monkeypatch.setenv("THREEDLABS_BASE_URL", server.api_url)
    monkeypatch.setenv("THREEDLABS_TOKEN", "long-project-test-token")
    yield server
    server.stop()


PROJECT_TO_VIDEO = """
video = pack_module("nodes.storyboard.video")
video_node = pack_module("nodes.storyboard.video_node")
story, plan, batch, _ = run("3DLabsLoadProject", project_id="p_long")
# The shipped "Project to video" workflow's settings, then the first frames SaveVideo would ask for.
vid = video_node.ThreeDLabsStoryboardVideo().run(images=batch, fps=24.0, motion="pan right", transition="crossfade",
    crossfade_seconds=0.5, width=1344, height=768, seconds_per_scene=4.0, scene_plan=plan)["result"][0]
next(iter(vid.encoder_frames()))
"""


@needs_proc
@pytest.mark.parametrize("seconds", [1e7, 1e8])
def test_a_scene_longer_than_any_plan_is_refused_before_memory_grows(long_project, seconds):
    long_project.seconds = seconds
    out = probe(PROJECT_TO_VIDEO, cap=1 * GB)  # unguarded: +2 GB before the first frame (1e7), MemoryError (1e8)
    assert out["error"] == "ValidationError", out
    assert f"Scene 1 lasts {seconds:g} s, longer than the 5 minutes (300 s) a 3DLabs plan can last" in out["message"]
    assert out["growth"] < 100 * MB, f"peak +{out['growth'] / MB:.0f} MB"


def test_a_storyboard_past_an_hour_in_all_is_refused_naming_the_scene_and_the_limit():
    with pytest.raises(errors.ValidationError) as info:
        plan_mod.plan_timeline([300] * 11 + [290, 20, 5], 24, labels=list(range(1, 15)))
    message = str(info.value)
    assert "scenes up to scene 13 (20 s) already last 3610 s, past the 60 minutes a storyboard may last" in message
    assert "Shorten the scenes" in message


def test_a_plan_the_model_overshot_still_renders():
    """A 5-minute plan that came back at 5:03 was paid for: it is rendered, not refused."""
    assert plan_mod.plan_timeline([100, 100, 103], 24).total == 303 * 24


def test_normal_plans_give_the_frames_they_gave_before():
    """The limit only refuses; up to exactly 5 minutes every plan keeps its frames (cumulative rounding)."""
    sandbox_content = pack_module("sandbox.content")
    for minutes, fps, video_model in ((5, 24.0, None), (5, 30.0, "kling"), (1, 12.0, None), (3, 23.976, "veo")):
        made = sandbox_content.scene_plan({"title": "Clocks"}, minutes, video_model)
        durations = [scene["duration"] for scene in made["scenes"]]
        plan = plan_mod.plan_timeline(durations, fps, "slow zoom in", "crossfade", 0.5)
        edges, elapsed = [0], 0.0
        for seconds in durations:
            elapsed += seconds
            edges.append(int(elapsed * fps + 0.5))
        assert list(plan.counts) == [b - a for a, b in zip(edges, edges[1:])]
        assert plan.total == round(made["totalDuration"] * fps) and made["totalDuration"] <= minutes * 60
    assert plan_mod.plan_timeline([75.0] * 4, 24).total == 7200  # the 5-minute 1080p storyboard, exactly


# --- Load Project on a dripping API ------------------------------------------------------------------------

LIMIT = 0.5  # seconds from the press to the node's end


@pytest.fixture(params=[False, True], ids=["core-0.3.64", "core-current"])
def core(request, monkeypatch, sandbox):
    return install(monkeypatch, base_exception=request.param)


def pool_is_free(seconds: float = 3.0) -> bool:
    """Every worker of the pack's one pool takes a task within ``seconds``: none is still held by a request."""
    size = config.load_settings().max_in_flight
    together = threading.Barrier(size + 1, timeout=seconds)
    for _ in range(size):
        run_mod.submit(size, together.wait)
    try:
        together.wait()
    except threading.BrokenBarrierError:
        return False
    return True


def wait_until(condition, seconds: float = 3.0) -> bool:
    ends = time.monotonic() + seconds
    while not condition() and time.monotonic() < ends:
        time.sleep(0.02)
    return condition()


def test_cancel_ends_load_project_while_the_api_drips_its_answer_and_the_next_prompt_runs(core, sandbox):
    sandbox.set_faults(session_drip_bps=400)  # the project's 4.6 KB answer over about 12 s

    def press():
        if wait_until(lambda: sandbox.stats()["faults_injected"]["session_drip"] >= 1, 10):
            time.sleep(0.3)  # inside the answer, a few reads in
            core.press_cancel()

    presser = threading.Thread(target=press, daemon=True)
    presser.start()
    try:
        run("3DLabsLoadProject", project_id="proj_demo")
    except BaseException as exc:  # noqa: BLE001  what ended the node is the point
        ended = exc
    else:
        ended = None
    presser.join()
    assert core.pressed_at is not None, f"the node ended before Cancel was pressed ({ended!r})"
    elapsed = time.monotonic() - core.pressed_at
    assert isinstance(ended, core.Interrupt), f"{core.kind}: the node ended with {ended!r}"
    assert elapsed < LIMIT, f"{core.kind}: Cancel took {elapsed:.2f} s"
    # The worker reading the answer is cut off too, not left dripping behind the queue.
    assert pool_is_free(), "a worker still reads the dripping answer"

    core.flag.clear()  # ComfyUI starts the next prompt
    sandbox.set_faults(session_drip_bps=0)
    began = time.monotonic()
    story, plan, batch, _ = run("3DLabsLoadProject", project_id="proj_demo")
    assert batch.shape == (4, 768, 1344, 3) and len(plan.scenes) == 4
    assert time.monotonic() - began < 10


def test_a_dripping_answer_ends_at_its_deadline(sandbox, monkeypatch):
    monkeypatch.setattr(download, "ANSWER_DEADLINE_SECONDS", 1.0, raising=False)
    sandbox.set_faults(session_drip_bps=400)  # about 12 s for the whole answer, every read within any timeout
    began = time.monotonic()
    with pytest.raises(errors.NetworkError) as info:
        run("3DLabsLoadProject", project_id="proj_demo")
    assert time.monotonic() - began < 5
    message = str(info.value)
    assert "3DLabs did not answer in time" in message and "project proj_demo" in message
    assert "within the 1 s allowed for one answer" in message


def test_project_images_are_fetched_concurrently_in_the_runs_pool(sandbox, monkeypatch):
    together = threading.Barrier(4, timeout=10)  # the demo's four images: only concurrent downloads all pass
    seen = []
    original = client_mod.ThreeDLabsClient.fetch_image

    def fetch_image(self, ref, **kwargs):
        seen.append(threading.current_thread().name)
        together.wait()
        return original(self, ref, **kwargs)

    monkeypatch.setattr(client_mod.ThreeDLabsClient, "fetch_image", fetch_image)
    batch = run("3DLabsLoadProject", project_id="proj_demo")[2]
    assert batch.shape[0] == 4 and len(seen) == 4
    assert all(name.startswith("3dlabs-run") for name in seen), seen
    assert torch.isfinite(batch).all()
