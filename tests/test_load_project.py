"""Load Project over real HTTP: the sandbox's own projects, and projects served by a small local
scripted server (tests/scripted_server.py) in shapes the sandbox does not produce (images beside the
plan, assets lists, no images).

Each case checks what a user sees: the images in scene order (told apart by colour), the plan that
goes with them, Storyboard Timeline accepting both, or a typed error naming the project and the keys.
"""

from __future__ import annotations

import io
import json

import pytest
import requests
from fixtures_images import png
from PIL import Image
from scripted_server import ScriptedServer, raw

from conftest import pack_module
from node_runner import collect_jobs, run, submit_job

errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")

pytestmark = pytest.mark.usefixtures("fresh_runtime")

TOKEN = "load-project-test-token-5f2a"
COLOURS = {1: (220, 30, 30), 2: (30, 200, 40), 3: (40, 60, 230)}


def colours(batch) -> list[tuple[int, int, int]]:
    """The colour of the centre pixel of each image of an IMAGE batch, as 0-255 ints."""
    _, height, width, _ = batch.shape
    return [tuple(round(float(v) * 255) for v in image[height // 2, width // 2]) for image in batch]


def near(got, want, tolerance=3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(got, want))


# --- the sandbox's projects --------------------------------------------------------------------


def test_sandbox_demo_project_loads_in_scene_order(sandbox):
    story, plan, batch, project_json = run("3DLabsLoadProject", project_id="proj_demo")
    raw = json.loads(project_json)
    headers = {"Authorization": f"Bearer {sandbox.static_token}"}
    ordered = sorted((s for s in raw["scenes"] if s.get("imageUrl")), key=lambda s: s["sceneNumber"])
    expected = []
    for scene in ordered:
        answer = requests.get(scene["imageUrl"], headers=headers, timeout=10)
        answer.raise_for_status()
        image = Image.open(io.BytesIO(answer.content)).convert("RGB")
        expected.append(image.getpixel((image.width // 2, image.height // 2)))
    assert batch.shape[0] == len(plan.scenes) == len(expected) == 4
    for got, want in zip(colours(batch), expected):
        assert near(got, want)


def test_sandbox_project_with_a_story_but_no_images_says_so(sandbox):
    client = clients.client_for()
    job_id = submit_job(client, "story", "a kite that hates wind", 1, project_id="proj_kite")
    collect_jobs(client, [job_id], 30)
    with pytest.raises(errors.ImageError) as info:
        run("3DLabsLoadProject", project_id="proj_kite")
    message = str(info.value)
    assert "proj_kite has no scene images yet" in message
    assert "a story" in message and "keys seen: id" in message and "Image Generate" in message


# --- projects in shapes the sandbox does not produce --------------------------------------------


STORY = {"title": "Three Colours", "beats": [{"heading": "Red", "narration": "It begins red."}]}
PLAN = {"scenes": [{"sceneNumber": n, "imagePrompt": f"a {name} room", "duration": 2}
                   for n, name in ((1, "red"), (2, "green"), (3, "blue"))]}
PROJECTS = {
    # Images in a list of scenes beside the plan, out of order; the plan's scenes carry none.
    "p_beside": {"id": "p_beside", "name": "Beside", "story": STORY, "scenePlan": PLAN,
                 "scenes": [{"sceneNumber": 3, "imageUrl": "ORIGIN/img/3.png"},
                            {"sceneNumber": 1, "imageUrl": "ORIGIN/img/1.png"},
                            {"sceneNumber": 2, "imageUrl": "ORIGIN/img/2.png"}]},
    # An assets list with a narration track among the images, and the project wrapped once.
    "p_assets": {"data": {"projectId": "p_assets", "title": "Assets", "storyData": STORY, "plan": PLAN["scenes"],
                          "assets": [{"type": "image", "scene_number": 2, "url": "ORIGIN/img/2.png"},
                                     {"type": "audio", "scene_number": 1, "url": "ORIGIN/audio/1.mp3"},
                                     {"type": "image", "scene_number": 3, "url": "ORIGIN/img/3.png"},
                                     {"type": "image", "scene_number": 1, "url": "ORIGIN/img/1.png"}]}},
    "p_story_only": {"id": "p_story_only", "story": STORY, "scenePlan": PLAN, "scenes": []},
    "p_unreadable": {"id": "p_unreadable", "owner": {"uid": "u1"}, "blob": {"kind": "x", "v": 2}},
}


@pytest.fixture(scope="module")
def project_server():
    server = ScriptedServer()
    for number, rgb in COLOURS.items():
        server.on("GET", f"/img/{number}.png", raw(png(rgb, (32, 24)), content_type="image/png"))
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


@pytest.mark.parametrize("project_id", ["p_beside", "p_assets"])
def test_images_beside_the_plan_load_in_scene_order_and_feed_the_timeline(projects, project_id):
    story, plan, batch, project_json = run("3DLabsLoadProject", project_id=project_id)
    assert story.title == "Three Colours" and [s.number for s in plan.scenes] == [1, 2, 3]
    assert tuple(batch.shape) == (3, 24, 32, 3)
    for got, number in zip(colours(batch), (1, 2, 3)):
        assert near(got, COLOURS[number]), (got, number)
    assert project_id in project_json
    frames, fps, text, *_captions_and_audio = run("3DLabsStoryboardTimeline", images=batch, fps=2.0, motion="none",
                                        transition="cut", crossfade_seconds=0.0, width=0, height=0,
                                        seconds_per_scene=1.0, scene_plan=plan)
    assert tuple(frames.shape) == (12, 24, 32, 3) and fps == 2.0  # 3 scenes of 2 s at 2 fps
    assert near(colours(frames[-1:])[0], COLOURS[3])


def test_project_with_plan_but_no_images_is_an_error_naming_project_and_keys(projects):
    with pytest.raises(errors.ImageError) as info:
        run("3DLabsLoadProject", project_id="p_story_only")
    message = str(info.value)
    assert "p_story_only has no scene images yet" in message
    assert "a story and a scene plan of 3 scenes" in message
    assert "keys seen: id, story {title, beats}, scenePlan {scenes}, scenes" in message


def test_project_with_nothing_readable_is_a_format_error_naming_the_keys(projects):
    with pytest.raises(errors.ResponseFormatError) as info:
        run("3DLabsLoadProject", project_id="p_unreadable")
    message = str(info.value)
    assert "project p_unreadable holds no story, scene plan or image" in message
    assert "owner {uid}" in message and "blob {kind, v}" in message
