"""Partial projects (issue 21): a plan of more scenes than images, loaded and storyboarded over real HTTP.

Load Project places each image by the scene number found beside it and says which scenes have none;
its scene plan tells Storyboard Timeline / Video which scenes the batch covers, so they storyboard those
scenes and name the others. Without that information a short batch stays an error, and a full project
renders exactly the frames it rendered before. Images are told apart by colour.
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import requests
import torch
from fixtures_images import png
from PIL import Image
from scripted_server import ScriptedServer, raw

from conftest import pack_module
from node_runner import call_node, run

errors = pack_module("nodes.api.errors")
models = pack_module("nodes.api.models")
readers = pack_module("nodes.api.readers")
clients = pack_module("nodes.clients")
timeline = pack_module("nodes.storyboard.timeline")

pytestmark = pytest.mark.usefixtures("fresh_runtime")

TOKEN = "partial-project-test-token-9c1d"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230), "yellow": (230, 220, 40)}
TIMING = dict(fps=2.0, motion="none", transition="cut", crossfade_seconds=0.0, width=0, height=0,
              seconds_per_scene=5.0)


def colours(batch) -> list[tuple[int, int, int]]:
    """The colour of the centre pixel of each image of an IMAGE batch, as 0-255 ints."""
    _, height, width, _ = batch.shape
    return [tuple(round(float(v) * 255) for v in image[height // 2, width // 2]) for image in batch]


def named(batch) -> list[str]:
    """The COLOURS name of each image of the batch (within a small tolerance)."""
    return [next(name for name, want in COLOURS.items() if all(abs(a - b) <= 3 for a, b in zip(got, want)))
            for got in colours(batch)]


def load(project_id: str):
    """Load Project's outputs, the node's text and project_json read back."""
    out = call_node("3DLabsLoadProject", project_id=project_id)
    story, plan, batch, project_json = out["result"]
    return plan, batch, json.loads(project_json), "\n\n".join(out["ui"]["text"])


def storyboard(batch, plan, **over):
    out = run("3DLabsStoryboardTimeline", images=batch, scene_plan=plan, **{**TIMING, **over})
    frames, text = out[0], out[2]
    return frames, text


def video(batch, plan, **over):
    return run("3DLabsStoryboardVideo", images=batch, scene_plan=plan, **{**TIMING, **over})[:2]


# --- the sandbox's partial project ----------------------------------------------------------------


def test_sandbox_partial_project_loads_its_images_by_scene_and_names_the_others(sandbox):
    plan, batch, raw, text = load("proj_partial")
    served = requests.get(f"{sandbox.api_url}/session/proj_partial", timeout=10,
                          headers={"Authorization": f"Bearer {sandbox.static_token}"}).json()
    expected = []
    for scene in served["scenes"]:
        if scene["imageUrl"]:
            image = Image.open(io.BytesIO(requests.get(scene["imageUrl"], timeout=10).content)).convert("RGB")
            expected.append(image.getpixel((image.width // 2, image.height // 2)))
    assert [s.number for s in plan.scenes] == [1, 2, 3, 4] and plan.image_scenes == [1, 3]
    assert batch.shape[0] == 2 and len(expected) == 2
    for got, want in zip(colours(batch), expected):
        assert all(abs(a - b) <= 3 for a, b in zip(got, want)), (got, want)
    assert (raw["image_scenes"], raw["scenes_without_image"], raw["images_left_out"]) == ([1, 3], [2, 4], [])
    # Otherwise project_json is the project as served, key for key.
    assert {k: v for k, v in raw.items() if k not in ("image_scenes", "scenes_without_image",
                                                      "images_left_out")} == served
    assert "2 images (scenes 1, 3)" in text and "No image yet for scenes 2, 4" in text


def test_sandbox_partial_project_to_video_storyboards_scenes_1_and_3(sandbox):
    plan, batch, _raw, _text = load("proj_partial")
    vid, text = video(batch, plan, width=64)
    assert vid.get_frame_count() == 60  # scenes 1 and 3 of 15 s each, at 2 fps
    assert "Scene 1: 0.00 s - 15.00 s" in text and "Scene 3: 15.00 s - 30.00 s" in text
    assert "Scene 2:" not in text and "Scene 4:" not in text
    assert "Left out for lack of an image: scene(s) 2, 4" in text
    frames, timeline_text = storyboard(batch, plan, width=64)
    assert torch.equal(vid.get_components().images, frames) and timeline_text == text


def test_without_the_plans_image_scenes_a_short_batch_is_still_an_error(sandbox):
    plan, batch, _raw, _text = load("proj_partial")
    for other_plan, images in ((dataclasses.replace(plan, image_scenes=None), batch),
                               (plan, batch[:1])):  # a batch changed on the way: the numbers no longer fit
        for node in (storyboard, video):
            with pytest.raises(errors.ValidationError, match="The scene plan has 4 scenes but only"):
                node(images, other_plan)


@pytest.mark.parametrize("motion,transition", [("none", "cut"), ("slow zoom in", "crossfade")])
def test_a_full_project_renders_exactly_what_it_rendered_before(sandbox, motion, transition):
    plan, batch, raw, text = load("proj_demo")
    assert plan.image_scenes == [1, 2, 3, 4] and raw["scenes_without_image"] == [] and batch.shape[0] == 4
    before = dataclasses.replace(plan, image_scenes=None)  # the plan Load Project returned until now
    over = dict(fps=1.0, width=64, motion=motion, transition=transition, crossfade_seconds=2.0)
    frames, frames_text = storyboard(batch, plan, **over)
    old_frames, old_text = storyboard(batch, before, **over)
    assert frames.shape[0] == 60 and torch.equal(frames, old_frames) and frames_text == old_text
    vid, vid_text = video(batch, plan, **over)
    old_vid, old_vid_text = video(batch, before, **over)
    assert torch.equal(vid.get_components().images, old_vid.get_components().images) and vid_text == old_vid_text
    assert "Left out" not in frames_text + vid_text and "No image yet" not in text


# --- projects in shapes the sandbox does not produce ----------------------------------------------


def img(name: str) -> str:
    return f"ORIGIN/img/{name}.png"


PLAN = {"scenes": [{"sceneNumber": n, "imagePrompt": f"scene {n}", "duration": d} for n, d in ((1, 2), (2, 3), (3, 1))]}
PROJECTS = {
    # Images inside the plan's scenes, as the sandbox keeps them; scene 2 has none yet.
    "p_partial": {"id": "p_partial", "scenePlan": {"scenes": [
        {**PLAN["scenes"][0], "imageUrl": img("red")}, {**PLAN["scenes"][1], "imageUrl": None},
        {**PLAN["scenes"][2], "imageUrl": img("blue")}]}},
    # Two images for scene 2, out of scene order: the first found is used.
    "p_double": {"id": "p_double", "scenePlan": PLAN, "scenes": [
        {"sceneNumber": 3, "imageUrl": img("blue")}, {"sceneNumber": 2, "imageUrl": img("green")},
        {"sceneNumber": 1, "imageUrl": img("red")}, {"sceneNumber": 2, "imageUrl": img("yellow")}]},
    # No image has a scene number: scenes 1, 2, ... in the order found.
    "p_unnumbered": {"id": "p_unnumbered", "scenePlan": PLAN, "images": [img("blue"), img("red")]},
    "p_unnumbered_all": {"id": "p_unnumbered_all", "scenePlan": PLAN,
                         "images": [img("blue"), img("red"), img("green")]},
    # One numbered image beside two without a number: those two cannot be placed.
    "p_mixed": {"id": "p_mixed", "scenePlan": PLAN, "scenes": [{"sceneNumber": 2, "imageUrl": img("green")}],
                "images": [img("red"), img("yellow")]},
}


@pytest.fixture(scope="module")
def project_server():
    server = ScriptedServer()
    for name, rgb in COLOURS.items():
        server.on("GET", f"/img/{name}.png", raw(png(rgb, (32, 24)), content_type="image/png"))
    for project_id, project in PROJECTS.items():
        text = json.dumps(project).replace("ORIGIN", server.origin)
        server.on("GET", f"/api/session/{project_id}", raw(text.encode()))
    yield server
    server.stop()


@pytest.fixture
def projects(project_server, monkeypatch):
    monkeypatch.setenv("THREEDLABS_BASE_URL", project_server.origin + "/api")
    monkeypatch.setenv("THREEDLABS_TOKEN", TOKEN)
    clients.reset_clients()
    yield project_server
    clients.reset_clients()


@pytest.mark.parametrize("project_id,images,scenes,missing", [
    ("p_partial", ["red", "blue"], [1, 3], [2]),
    ("p_double", ["red", "green", "blue"], [1, 2, 3], []),
    ("p_unnumbered", ["blue", "red"], [1, 2], [3]),
    ("p_unnumbered_all", ["blue", "red", "green"], [1, 2, 3], []),
    ("p_mixed", ["green"], [2], [1, 3]),
])
def test_images_are_placed_by_scene_number(projects, project_id, images, scenes, missing):
    plan, batch, raw, text = load(project_id)
    assert named(batch) == images
    assert plan.image_scenes == raw["image_scenes"] == scenes
    assert raw["scenes_without_image"] == missing and raw["id"] == project_id
    assert ("No image yet for scene" in text) == bool(missing)


def test_a_second_image_of_a_scene_is_left_out_and_named(projects):
    _plan, _batch, raw, text = load("p_double")
    assert "Scene 2 has 2 images: the first found is used, 1 left out." in text
    assert raw["images_left_out"] == [{"scene": 2, "kind": "url", "value": f"{projects.origin}/img/yellow.png"}]


def test_images_without_a_scene_number_beside_numbered_ones_are_left_out_and_counted(projects):
    _plan, _batch, raw, text = load("p_mixed")
    assert "2 images without a scene number left out" in text
    assert [(item["scene"], item["value"].rsplit("/", 1)[-1]) for item in raw["images_left_out"]] == [
        (None, "red.png"), (None, "yellow.png")]
    assert "No image yet for scenes 1, 3" in text


def test_timeline_of_a_partial_project_follows_the_covered_scenes_durations(projects):
    plan, batch, _raw, _text = load("p_partial")
    frames, text = storyboard(batch, plan)
    assert named(frames) == ["red"] * 4 + ["blue"] * 2  # scene 1 lasts 2 s and scene 3 1 s, at 2 fps
    assert text.splitlines()[:2] == ["Scene 1: 0.00 s - 2.00 s (2.00 s, 4 frames)",
                                     "Scene 3: 2.00 s - 3.00 s (1.00 s, 2 frames)"]
    assert "Left out for lack of an image: scene(s) 2 " in text
    vid, vid_text = video(batch, plan)
    assert vid.get_frame_count() == 6 and vid_text == text


def test_image_scenes_plan_durations_and_scenes_left_out():
    scenes = [models.Scene(number=n, image_prompt="", duration=d) for n, d in ((1, 2.0), (2, 3.0), (3, None))]
    partial = models.ScenePlan(scenes=scenes, image_scenes=[1, 3])
    assert timeline.plan_durations(partial, 2, 4.0) == ([2.0, 4.0], [1, 3], [3])
    assert timeline.scenes_left_out(partial, 2) == [2]
    # An image of a scene the plan does not have keeps its number and lasts seconds_per_scene.
    off_plan = dataclasses.replace(partial, image_scenes=[2, 7])
    assert timeline.plan_durations([off_plan], 2, 4.0) == ([3.0, 4.0], [2, 7], [7])
    assert timeline.scenes_left_out(off_plan, 2) == [1, 3]
    assert timeline.scenes_left_out(partial, 3) == [] and timeline.scenes_left_out(None, 2) == []


def test_the_image_finder_gives_each_image_the_scene_number_beside_it():
    found = readers.find_images({"scenes": [{"sceneNumber": 2, "imageUrl": "https://x.test/b.png"},
                                            {"sceneNumber": 1, "url": "https://x.test/a.png"}],
                                 "image": "https://x.test/c.png"})
    assert [(ref.value[-5:], ref.scene) for ref in found] == [("a.png", 1), ("b.png", 2), ("c.png", None)]
    # The scene is not part of what an image is: equal, same hash, and shown in the repr only when known.
    assert found[0] == models.ImageRef("url", "https://x.test/a.png")
    assert hash(found[0]) == hash(models.ImageRef("url", "https://x.test/a.png"))
    assert repr(found[0]).endswith(", scene=1)") and repr(found[2]) == "ImageRef('url', 'https://x.test/c.png')"
