"""The sandbox server over real HTTP on loopback: endpoints, job lifecycle, auth, faults, persistence."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from fixtures_images import png_size
from PIL import Image

from conftest import PACK_DIR, pack_module, start_sandbox

server_mod = pack_module("sandbox.server")
content = pack_module("sandbox.content")
SandboxServer = server_mod.SandboxServer

TIMEOUT = 10  # seconds per HTTP request: generous, only bounds a hung test


class FakeClock:
    """The sandbox computes job phases from its clock; this one moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def clocked_server():
    clock = FakeClock()
    server = start_sandbox(job_seconds=2.0, clock=clock)
    yield server, clock
    server.stop()


@pytest.fixture
def clocked(clocked_server):
    server, clock = clocked_server
    server.reset()
    return server, clock


def headers(server, token=None, workspace=None):
    found = {"Authorization": f"Bearer {token or server.static_token}"}
    if workspace:
        found["x-workspace-id"] = workspace
    return found


def api_get(server, path, **kwargs):
    kwargs.setdefault("headers", headers(server))
    return requests.get(server.origin + path, timeout=TIMEOUT, **kwargs)


def api_post(server, path, body, **kwargs):
    kwargs.setdefault("headers", headers(server))
    return requests.post(server.origin + path, json=body, timeout=TIMEOUT, **kwargs)


STORY = {"topic": "a robot who learns to paint", "maxMinutes": 1}
IMAGE = {"prompt": "a red kite over a harbour", "provider": "replicate", "model": "flux-dev",
         "aspectRatio": "16:9"}


def create(server, path, body, **kwargs):
    answer = api_post(server, path, body, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()["jobId"]


def wait_job(server, job_id, deadline=8.0, **kwargs):
    """Poll until the job is finished; bounded so a broken sandbox fails instead of hanging."""
    end = time.monotonic() + deadline
    while True:
        job = api_get(server, f"/api/jobs/{job_id}", **kwargs).json()
        if job["status"] in ("completed", "failed") or time.monotonic() > end:
            return job
        time.sleep(0.03)


# --- endpoints ---------------------------------------------------------------------------------


def test_workspaces_are_a_bare_array_of_the_two_seeded(sandbox):
    answer = api_get(sandbox, "/api/workspaces")
    assert answer.status_code == 200
    assert answer.json() == [
        {"id": "ws_sandbox", "name": "Sandbox Studio", "role": "owner"},
        {"id": "ws_team", "name": "Sandbox Team", "role": "member"},
    ]


@pytest.mark.parametrize("workspace", [None, "ws_sandbox", "ws_team"])
def test_each_workspace_lists_its_demo_project(sandbox, workspace):
    answer = api_get(sandbox, "/api/session/list", headers=headers(sandbox, workspace=workspace))
    sessions = answer.json()["sessions"]
    demo = [s for s in sessions if s["id"] == "proj_demo"]
    assert len(demo) == 1
    assert demo[0]["name"] == "The Lighthouse Keeper's Cat"
    assert demo[0]["workspaceId"] == (workspace or "ws_sandbox")
    assert demo[0]["sceneCount"] == 4
    assert set(demo[0]) == {"id", "name", "createdAt", "updatedAt", "workspaceId", "sceneCount"}


def test_partial_project_is_listed_and_has_images_for_scenes_1_and_3_only(sandbox):
    listed = api_get(sandbox, "/api/session/list").json()["sessions"]
    assert [s["id"] for s in listed][:2] == ["proj_demo", "proj_partial"]  # the demo stays first
    assert next(s for s in listed if s["id"] == "proj_partial")["name"] == "The Clock That Ran Backwards"
    project = api_get(sandbox, "/api/session/proj_partial").json()
    assert [s["sceneNumber"] for s in project["scenePlan"]["scenes"]] == [1, 2, 3, 4]
    assert [(s["sceneNumber"], bool(s["imageUrl"])) for s in project["scenes"]] == [
        (1, True), (2, False), (3, True), (4, False)]
    assert requests.get(project["scenes"][2]["imageUrl"], timeout=TIMEOUT).status_code == 200


def test_demo_project_has_story_plan_and_downloadable_images(sandbox):
    project = api_get(sandbox, "/api/session/proj_demo").json()
    assert project["story"]["title"] == "The Lighthouse Keeper's Cat"
    assert project["story"]["beats"]
    assert [s["sceneNumber"] for s in project["scenePlan"]["scenes"]] == [1, 2, 3, 4]
    assert [s["sceneNumber"] for s in project["scenes"]] == [1, 2, 3, 4]
    for scene, planned in zip(project["scenes"], project["scenePlan"]["scenes"], strict=True):
        assert scene["imageUrl"].startswith(sandbox.file_url + "/files/")
        assert scene["imagePrompt"] == planned["imagePrompt"]
        assert planned["imageUrl"] == scene["imageUrl"]
    image = requests.get(project["scenes"][0]["imageUrl"], timeout=TIMEOUT)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert int(image.headers["Content-Length"]) == len(image.content)
    assert Image.open(io.BytesIO(image.content)).size == (1344, 768)


def test_unknown_workspace_is_refused_but_workspaces_still_list(sandbox):
    bad = headers(sandbox, workspace="ws_nope")
    answers = (api_get(sandbox, "/api/session/list", headers=bad),
               api_post(sandbox, "/api/claude/stories", STORY, headers=bad))
    for answer in answers:
        assert answer.status_code == 403
        assert answer.json() == {"error": "Workspace not found or access denied"}
    assert api_get(sandbox, "/api/workspaces", headers=bad).status_code == 200
    assert sandbox.stats()["jobs_created_total"] == 0


def test_unknown_job_and_session_are_404(sandbox):
    assert api_get(sandbox, "/api/jobs/job_missing").json() == {"error": "Job not found"}
    assert api_get(sandbox, "/api/jobs/job_missing").status_code == 404
    assert api_get(sandbox, "/api/session/proj_missing").status_code == 404


def test_unknown_route_is_404_and_wrong_method_is_405(sandbox):
    assert api_get(sandbox, "/api/audio/generate").status_code == 404
    answer = api_get(sandbox, "/api/claude/stories")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_jobs_belong_to_their_workspace(sandbox):
    job_id = create(sandbox, "/api/claude/stories", STORY, headers=headers(sandbox, workspace="ws_team"))
    assert api_get(sandbox, f"/api/jobs/{job_id}", headers=headers(sandbox, workspace="ws_team")).ok
    assert api_get(sandbox, f"/api/jobs/{job_id}").status_code == 404


def test_keep_alive_answers_are_http_1_1_with_lengths(sandbox):
    with requests.Session() as session:
        session.headers.update(headers(sandbox))
        for _ in range(3):
            answer = session.get(sandbox.api_url + "/workspaces", timeout=TIMEOUT)
            assert answer.raw.version == 11
            assert answer.headers["Content-Length"] == str(len(answer.content))
            assert answer.headers.get("Connection", "").lower() != "close"


# --- jobs --------------------------------------------------------------------------------------


def test_story_job_runs_to_completion_with_rising_progress(sandbox):
    job_id = create(sandbox, "/api/claude/stories", {**STORY, "maxMinutes": 2})
    seen, progress = [], []
    end = time.monotonic() + 8
    while time.monotonic() < end:
        job = api_get(sandbox, f"/api/jobs/{job_id}").json()
        seen.append(job["status"])
        progress.append(job["progress"])
        if job["status"] == "completed":
            break
        time.sleep(0.02)
    order = ["queued", "processing", "completed"]
    assert seen[-1] == "completed"
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert progress == sorted(progress) and progress[-1] == 100
    assert {job["id"], job["jobId"]} == {job_id}
    assert job["type"] == "story" and job["error"] is None and job["createdAt"].endswith("Z")
    story = job["result"]
    assert story["topic"] == STORY["topic"] and story["maxMinutes"] == 2
    assert len(story["beats"]) == 6
    words = sum(len(beat["narration"].split()) for beat in story["beats"])
    assert 180 <= words <= 340  # about 130 narrated words per minute


def test_lifecycle_follows_the_clock_exactly(clocked):
    server, clock = clocked
    job_id = create(server, "/api/claude/stories", STORY)  # job_seconds is 2: queued for 0.2 s
    read = lambda: api_get(server, f"/api/jobs/{job_id}").json()  # noqa: E731
    first = read()
    assert (first["status"], first["progress"], first["result"]) == ("queued", 0, None)
    clock.advance(0.1)
    assert read()["status"] == "queued"
    clock.advance(0.9)  # 0.8 s into the 1.8 s of processing: 44.4%
    middle = read()
    assert (middle["status"], middle["progress"], middle["result"]) == ("processing", 44, None)
    clock.advance(0.75)
    assert read()["progress"] == 86
    clock.advance(0.5)
    done = read()
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["result"]["title"]


def test_job_seconds_is_settable_and_reset_restores_it(clocked):
    server, clock = clocked
    server.job_seconds = 10
    job_id = create(server, "/api/claude/stories", STORY)
    clock.advance(5)
    assert api_get(server, f"/api/jobs/{job_id}").json()["status"] == "processing"
    server.reset()
    assert server.job_seconds == 2.0
    with pytest.raises(ValueError):
        server.job_seconds = -1
    server.job_seconds = 0  # jobs finish at once
    job_id = create(server, "/api/claude/stories", STORY)
    assert api_get(server, f"/api/jobs/{job_id}").json()["status"] == "completed"


def test_same_inputs_give_the_same_story(sandbox):
    first = wait_job(sandbox, create(sandbox, "/api/claude/stories", STORY))["result"]
    second = wait_job(sandbox, create(sandbox, "/api/claude/stories", STORY))["result"]
    other = wait_job(sandbox, create(sandbox, "/api/claude/stories", {**STORY, "provider": "claude"}))
    other = other["result"]
    assert first == second
    assert other != first and other["provider"] == "claude"


def test_scene_plan_over_http_follows_the_story_and_minutes(sandbox):
    story = wait_job(sandbox, create(sandbox, "/api/claude/stories", STORY))["result"]
    body = {"story": story, "maxMinutes": 1}
    plan = wait_job(sandbox, create(sandbox, "/api/claude/scene-planning", body))["result"]
    again = wait_job(sandbox, create(sandbox, "/api/claude/scene-planning", body))["result"]
    assert plan == again
    scenes = plan["scenes"]
    assert len(scenes) == 8
    assert [s["sceneNumber"] for s in scenes] == list(range(1, 9))
    assert sum(s["duration"] for s in scenes) == plan["totalDuration"] == 60
    for scene in scenes:
        assert 6 <= scene["duration"] <= 12
        assert scene["imagePrompt"] and scene["narration"] and scene["title"]


@pytest.mark.parametrize("minutes", [1, 2.5, 5])
@pytest.mark.parametrize("video_model", [None, "veo-3", "kling-v2", "runway-gen4", "wan-2.1"])
def test_scene_durations_add_up_and_fit_the_video_model(minutes, video_model):
    story = content.story("a kite festival", minutes)
    plan = content.scene_plan(story, minutes, video_model)
    durations = [s["duration"] for s in plan["scenes"]]
    assert sum(durations) == plan["totalDuration"] <= minutes * 60
    assert plan["totalDuration"] > minutes * 60 - 8
    assert all(d * 2 == int(d * 2) for d in durations)
    clip = content.clip_seconds(video_model)
    if clip:
        assert all(d % clip == 0 for d in durations)
    else:
        assert all(6 <= d <= 12 for d in durations)
    assert 6 * minutes <= len(durations) <= 9 * minutes


def test_scene_plan_reads_a_story_of_unknown_shape():
    story = {"synopsis": "A fox finds a lantern. It glows at night. The village follows it."}
    plan = content.scene_plan(story, 1)
    assert plan["scenes"] and sum(s["duration"] for s in plan["scenes"]) == 60


@pytest.mark.parametrize("ratio,size", [("16:9", (1344, 768)), ("9:16", (768, 1344)), ("1:1", (1024, 1024)),
                                        ("4:3", (1152, 896))])
def test_image_job_gives_a_png_of_the_right_size(sandbox, ratio, size):
    job = wait_job(sandbox, create(sandbox, "/api/images/generate", {**IMAGE, "aspectRatio": ratio}))
    result = job["result"]
    assert (result["width"], result["height"]) == size
    assert (result["model"], result["provider"]) == ("flux-dev", "replicate")
    assert result["imageUrl"] == f"{sandbox.file_url}/files/{job['id']}.png"
    data = requests.get(result["imageUrl"], timeout=TIMEOUT).content
    assert png_size(data) == size
    picture = Image.open(io.BytesIO(data))
    picture.load()
    assert picture.mode == "RGB"


def test_images_are_deterministic_per_prompt_model_and_scene():
    images = pack_module("sandbox.images")
    one = images.render_png("a lighthouse", "flux-dev", 1, 256, 144)
    assert one == images.render_png("a lighthouse", "flux-dev", 1, 256, 144)
    assert one != images.render_png("a lighthouse", "flux-dev", 2, 256, 144)


def test_unfinished_image_is_not_served(clocked):
    server, _ = clocked
    job_id = create(server, "/api/images/generate", IMAGE)
    assert requests.get(f"{server.file_url}/files/{job_id}.png", timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{server.file_url}/files/nothing.png", timeout=TIMEOUT).status_code == 404


def test_finished_jobs_with_a_project_id_fill_that_project(sandbox):
    story = wait_job(sandbox, create(sandbox, "/api/claude/stories", {**STORY, "projectId": "proj_new"}))
    assert story["status"] == "completed"
    plan = wait_job(sandbox, create(sandbox, "/api/claude/scene-planning",
                                    {"story": story["result"], "maxMinutes": 1, "projectId": "proj_new"}))
    image = wait_job(sandbox, create(sandbox, "/api/images/generate",
                                     {**IMAGE, "projectId": "proj_new", "sceneNumber": 2}))
    project = api_get(sandbox, "/api/session/proj_new").json()
    assert project["name"] == story["result"]["title"]
    assert project["topic"] == STORY["topic"]
    assert project["story"] == story["result"]
    planned = project["scenePlan"]
    assert planned["scenes"][1].pop("imageUrl") == image["result"]["imageUrl"]
    assert planned == plan["result"]
    second = next(s for s in project["scenes"] if s["sceneNumber"] == 2)
    assert second == {"sceneNumber": 2, "imageUrl": image["result"]["imageUrl"],
                      "imagePrompt": IMAGE["prompt"]}
    assert len(project["scenes"]) == 8  # planned scenes without an image are listed with a null URL
    listed = api_get(sandbox, "/api/session/list").json()["sessions"]
    assert any(s["id"] == "proj_new" and s["sceneCount"] == 8 for s in listed)


def test_an_image_job_updates_the_demo_project_and_reset_restores_it(sandbox):
    wait_job(sandbox, create(sandbox, "/api/images/generate", {**IMAGE, "projectId": "proj_demo",
                                                                 "sceneNumber": 1}))
    changed = api_get(sandbox, "/api/session/proj_demo").json()
    assert changed["scenes"][0]["imagePrompt"] == IMAGE["prompt"]
    sandbox.reset()
    restored = api_get(sandbox, "/api/session/proj_demo").json()
    assert restored["scenes"][0]["imagePrompt"] != IMAGE["prompt"]


# --- validation --------------------------------------------------------------------------------


INVALID = [
    ("/api/claude/stories", {"maxMinutes": 1}, "topic"),
    ("/api/claude/stories", {"topic": "  ", "maxMinutes": 1}, "topic"),
    ("/api/claude/stories", {"topic": "x"}, "maxMinutes"),
    ("/api/claude/stories", {"topic": "x", "maxMinutes": 6}, "maxMinutes"),
    ("/api/claude/stories", {"topic": "x", "maxMinutes": "2"}, "maxMinutes"),
    ("/api/claude/stories", {"topic": "x", "maxMinutes": True}, "maxMinutes"),
    ("/api/claude/stories", {"topic": "x", "maxMinutes": 1, "provider": "gpt"}, "provider"),
    ("/api/claude/stories", {"topic": "x", "maxMinutes": 1, "projectId": 5}, "projectId"),
    ("/api/claude/scene-planning", {"maxMinutes": 1}, "story"),
    ("/api/claude/scene-planning", {"story": "text", "maxMinutes": 1}, "story"),
    ("/api/claude/scene-planning", {"story": {}, "maxMinutes": 0.5}, "maxMinutes"),
    ("/api/claude/scene-planning", {"story": {}, "maxMinutes": 1, "videoModel": 3}, "videoModel"),
    ("/api/images/generate", {**IMAGE, "prompt": ""}, "prompt"),
    ("/api/images/generate", {**IMAGE, "provider": "openai"}, "provider"),
    ("/api/images/generate", {k: v for k, v in IMAGE.items() if k != "model"}, "model"),
    ("/api/images/generate", {**IMAGE, "model": "flux dev!"}, "model"),
    ("/api/images/generate", {**IMAGE, "aspectRatio": "21:9"}, "aspectRatio"),
    ("/api/images/generate", {**IMAGE, "sceneNumber": 0}, "sceneNumber"),
    ("/api/images/generate", {**IMAGE, "sceneNumber": 1.5}, "sceneNumber"),
]


@pytest.mark.parametrize("path,body,field", INVALID)
def test_invalid_bodies_are_400_naming_the_field_and_create_no_job(sandbox, path, body, field):
    answer = api_post(sandbox, path, body)
    assert answer.status_code == 400
    assert field in answer.json()["error"]
    assert sandbox.stats()["jobs_created_total"] == 0


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]"])
def test_bodies_that_are_not_json_objects_are_400(sandbox, raw):
    answer = requests.post(sandbox.api_url + "/claude/stories", data=raw, timeout=TIMEOUT,
                           headers={**headers(sandbox), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "JSON" in answer.json()["error"]
    assert sandbox.stats()["jobs_created_total"] == 0


# --- auth --------------------------------------------------------------------------------------


def test_missing_token_is_401_signed_out(sandbox):
    answer = requests.get(sandbox.api_url + "/workspaces", timeout=TIMEOUT)
    assert answer.status_code == 401
    assert answer.json() == {"error": "Unauthorized"}
    assert answer.headers["x-clerk-auth-status"] == "signed-out"
    assert answer.headers["x-clerk-auth-reason"] == "session-token-missing"
    assert sandbox.stats()["auth_failures"] == 1


def test_image_host_api_serves_results_from_the_api_host_behind_clerk(sandbox):
    sandbox.set_faults(image_host="api")
    job = wait_job(sandbox, create(sandbox, "/api/images/generate", IMAGE))
    url = job["result"]["imageUrl"]
    assert url == f"{sandbox.origin}/api/files/{job['id']}.png"
    refused = requests.get(url, timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.headers["x-clerk-auth-reason"] == "session-token-missing"
    served = requests.get(url, headers=headers(sandbox), timeout=TIMEOUT)
    assert served.status_code == 200 and png_size(served.content) == (1344, 768)
    stats = sandbox.stats()
    assert stats["auth_failures"] == 1 and stats["file_requests_with_authorization"] == 1


def test_fresh_jwt_is_accepted_and_carries_exp(sandbox):
    token = sandbox.issue_token(ttl=30)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert {"sub", "exp", "iat"} <= set(claims)
    assert claims["exp"] - claims["iat"] == pytest.approx(30)
    assert api_get(sandbox, "/api/workspaces", headers=headers(sandbox, token)).status_code == 200


def test_expired_jwt_is_a_bare_404_with_clerk_headers(sandbox):
    token = sandbox.issue_token(ttl=0.05)
    time.sleep(0.1)
    answer = api_post(sandbox, "/api/claude/stories", STORY, headers=headers(sandbox, token))
    assert answer.status_code == 404
    assert answer.content == b""
    assert answer.headers["x-clerk-auth-status"] == "signed-out"
    assert answer.headers["x-clerk-auth-reason"] == "session-token-expired"
    assert sandbox.stats()["jobs_created_total"] == 0


def test_expiry_follows_the_clock(clocked):
    server, clock = clocked
    token = server.issue_token(ttl=5)
    assert api_get(server, "/api/workspaces", headers=headers(server, token)).status_code == 200
    clock.advance(5)
    assert api_get(server, "/api/workspaces", headers=headers(server, token)).status_code == 404


def test_revoked_token_is_401_invalid_until_reset(sandbox):
    token = sandbox.issue_token(ttl=60)
    other = sandbox.issue_token(ttl=60)
    sandbox.revoke(token)
    answer = api_get(sandbox, "/api/workspaces", headers=headers(sandbox, token))
    assert answer.status_code == 401
    assert answer.headers["x-clerk-auth-reason"] == "session-token-invalid"
    assert api_get(sandbox, "/api/workspaces", headers=headers(sandbox, other)).status_code == 200
    sandbox.reset()
    assert api_get(sandbox, "/api/workspaces", headers=headers(sandbox, token)).status_code == 200


@pytest.mark.parametrize("tamper", ["signature", "payload", "garbage", "scheme"])
def test_badly_signed_or_malformed_tokens_are_401_invalid(sandbox, tamper):
    token = sandbox.issue_token(ttl=60)
    head, payload, signature = token.split(".")
    if tamper == "signature":
        value = f"Bearer {head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    elif tamper == "payload":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["exp"] += 3600
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        value = f"Bearer {head}.{forged}.{signature}"
    elif tamper == "garbage":
        value = "Bearer not-a-token"
    else:
        value = f"Basic {sandbox.static_token}"
    answer = requests.get(sandbox.api_url + "/workspaces", headers={"Authorization": value}, timeout=TIMEOUT)
    assert answer.status_code == 401
    assert answer.headers["x-clerk-auth-reason"] == "session-token-invalid"


def test_custom_static_tokens_and_open_mode():
    with SandboxServer(static_tokens=["my-token"], debug_routes=True) as server:
        assert server.static_token == "my-token"
        assert api_get(server, "/api/workspaces").status_code == 200
        other = {"Authorization": "Bearer sandbox-static-token-0123456789"}
        assert api_get(server, "/api/workspaces", headers=other).status_code == 401
    with SandboxServer(require_auth=False, debug_routes=True) as server:
        assert requests.get(server.api_url + "/workspaces", timeout=TIMEOUT).status_code == 200


# --- debug routes ------------------------------------------------------------------------------


def test_debug_routes_need_no_auth(sandbox):
    base = sandbox.origin + "/__sandbox"
    token = requests.post(base + "/token?ttl=30", timeout=TIMEOUT).json()["token"]
    assert api_get(sandbox, "/api/workspaces", headers=headers(sandbox, token)).ok
    text = requests.post(base + "/token?ttl=30&format=text", timeout=TIMEOUT)
    assert text.headers["Content-Type"].startswith("text/plain") and text.text.count(".") == 2
    assert requests.post(base + "/revoke", json={"token": token}, timeout=TIMEOUT).json() == {"ok": True}
    assert api_get(sandbox, "/api/workspaces", headers=headers(sandbox, token)).status_code == 401
    flags = requests.post(base + "/faults", json={"latency_ms": 1}, timeout=TIMEOUT).json()
    assert flags["latency_ms"] == 1 and sandbox.faults.latency_ms == 1
    assert requests.post(base + "/faults", json={"nonsense": 1}, timeout=TIMEOUT).status_code == 400
    stats = requests.get(base + "/stats", timeout=TIMEOUT).json()
    assert stats["auth_failures"] == 1 and stats["requests"]["GET /api/workspaces"] == 2
    assert requests.post(base + "/reset", timeout=TIMEOUT).json() == {"ok": True}
    assert sandbox.faults.latency_ms == 0 and sandbox.stats()["requests_total"] == 0


def test_debug_routes_answer_404_unless_asked_for():
    """A sandbox started without debug routes (as ComfyUI starts it for a user) serves none of them."""
    with SandboxServer(job_seconds=0.1) as server:
        base = server.origin + "/__sandbox"
        assert requests.get(base + "/stats", timeout=TIMEOUT).status_code == 404
        assert requests.post(base + "/faults", json={"server_down": True}, timeout=TIMEOUT).status_code == 404
        assert requests.post(base + "/token?ttl=30&format=text", timeout=TIMEOUT).status_code == 404
        assert requests.post(base + "/reset", timeout=TIMEOUT).status_code == 404
        assert server.faults == pack_module("sandbox.faults").Faults()
        assert api_get(server, "/api/workspaces").status_code == 200


def test_stats_keys(sandbox):
    create(sandbox, "/api/claude/stories", STORY)
    api_get(sandbox, "/api/jobs/job_a")
    api_get(sandbox, "/api/jobs/job_b")
    stats = sandbox.stats()
    assert set(stats) == {"jobs_created", "jobs_created_total", "requests", "requests_total", "auth_failures",
                          "file_requests", "file_requests_with_authorization", "faults_injected"}
    assert stats["jobs_created"] == {"story": 1, "scene-planning": 0, "image": 0}
    assert stats["requests"]["POST /api/claude/stories"] == 1
    assert stats["requests"]["GET /api/jobs"] == 2
    assert stats["requests_total"] == 3
    assert {"429", "5xx", "reset"} <= set(stats["faults_injected"])


def test_jobs_made_and_looked_up_from_python_send_no_request(sandbox):
    sandbox.set_faults(hang_jobs=True)
    job_id = sandbox.create_job("image", IMAGE)
    assert sandbox.job(job_id) == {"id": job_id, "kind": "image", "params": IMAGE, "status": "queued"}
    assert sandbox.job(job_id, "ws_team") is None and sandbox.job("job_never") is None
    stats = sandbox.stats()
    assert stats["requests_total"] == 0 and stats["jobs_created"]["image"] == 1
    assert stats["faults_injected"]["hung_job"] == 1  # the flags set now decide how it ends, as for a POST
    assert api_get(sandbox, f"/api/jobs/{job_id}").json()["status"] in ("queued", "processing")


def test_set_faults_rejects_unknown_flags_and_bad_values(sandbox):
    with pytest.raises(ValueError):
        sandbox.set_faults(explode=True)
    with pytest.raises(ValueError):
        sandbox.set_faults(error_rate=2)
    with pytest.raises(ValueError):
        sandbox.set_faults(envelope="xml")
    assert sandbox.faults == pack_module("sandbox.faults").Faults()


def test_file_requests_with_authorization_are_counted(sandbox):
    url = api_get(sandbox, "/api/session/proj_demo").json()["scenes"][0]["imageUrl"]
    assert requests.get(url, timeout=TIMEOUT).status_code == 200
    assert requests.get(url, headers=headers(sandbox), timeout=TIMEOUT).status_code == 200
    stats = sandbox.stats()
    assert stats["file_requests"] == 2
    assert stats["file_requests_with_authorization"] == 1


# --- faults ------------------------------------------------------------------------------------


def test_latency_delays_every_api_answer(sandbox):
    sandbox.set_faults(latency_ms=150)
    started = time.monotonic()
    assert api_get(sandbox, "/api/workspaces").status_code == 200
    assert time.monotonic() - started >= 0.15  # a lower bound a sleep guarantees: never flaky
    assert sandbox.stats()["faults_injected"]["latency"] == 1


def test_error_rate_replaces_get_answers_with_429_or_5xx(sandbox):
    job_id = create(sandbox, "/api/claude/stories", STORY)
    sandbox.set_faults(error_rate=1.0)
    statuses = []
    for _ in range(12):
        answer = api_get(sandbox, f"/api/jobs/{job_id}")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.headers["Retry-After"] in ("0", "1")
    assert set(statuses) <= {429, 502, 503, 504} and len(set(statuses)) > 1
    injected = sandbox.stats()["faults_injected"]
    assert injected["429"] + injected["5xx"] == 12


def test_error_rate_follows_the_fault_seed(sandbox):
    def run():
        sandbox.set_faults(error_rate=0.5, fault_seed=7)
        return [api_get(sandbox, "/api/workspaces").status_code for _ in range(16)]

    first, second = run(), run()
    assert first == second
    assert 200 in first and any(status != 200 for status in first)


def test_post_error_rate_answers_429_or_503_without_creating_a_job(sandbox):
    sandbox.set_faults(post_error_rate=1.0)
    statuses = {api_post(sandbox, "/api/claude/stories", STORY).status_code for _ in range(8)}
    assert statuses <= {429, 503}
    stats = sandbox.stats()
    assert stats["jobs_created_total"] == 0
    assert stats["faults_injected"]["429"] + stats["faults_injected"]["5xx"] == 8


def test_reset_rate_resets_connections_before_any_job_exists(sandbox):
    sandbox.set_faults(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api_post(sandbox, "/api/claude/stories", STORY)
    with pytest.raises(requests.ConnectionError):
        api_get(sandbox, "/api/workspaces")
    stats = sandbox.stats()
    assert stats["jobs_created_total"] == 0
    assert stats["faults_injected"]["reset"] == 2
    sandbox.set_faults(reset_rate=0.0)
    assert api_get(sandbox, "/api/workspaces").status_code == 200


def test_drop_after_create_creates_the_job_then_resets(sandbox):
    sandbox.set_faults(drop_after_create=True)
    with pytest.raises(requests.ConnectionError):
        api_post(sandbox, "/api/claude/stories", STORY)
    stats = sandbox.stats()
    assert stats["jobs_created"]["story"] == 1 and stats["jobs_created_total"] == 1
    assert stats["faults_injected"]["drop_after_create"] == 1


def test_fail_jobs_fails_every_job(sandbox):
    sandbox.set_faults(fail_jobs=True)
    job = wait_job(sandbox, create(sandbox, "/api/claude/stories", STORY))
    assert job["status"] == "failed"
    assert job["error"] == "Sandbox: generation failed (injected)"
    assert job["result"] is None
    assert sandbox.stats()["faults_injected"]["failed_job"] == 1


@pytest.mark.parametrize("path,body", [
    ("/api/images/generate", {**IMAGE, "prompt": "a castle that will FAIL"}),
    ("/api/claude/stories", {**STORY, "topic": "FAIL at sea"}),
])
def test_fail_marker_fails_the_job(sandbox, path, body):
    job = wait_job(sandbox, create(sandbox, path, body))
    assert (job["status"], job["error"]) == ("failed", "Sandbox: generation failed (injected)")


def test_ordinary_words_are_not_markers(sandbox):
    job = wait_job(sandbox, create(sandbox, "/api/images/generate", {**IMAGE, "prompt": "a slow fail"}))
    assert job["status"] == "completed"


@pytest.mark.parametrize("how", ["flag", "marker"])
def test_hanging_jobs_stay_processing_at_99(clocked, how):
    server, clock = clocked
    body = IMAGE
    if how == "flag":
        server.set_faults(hang_jobs=True)
    else:
        body = {**IMAGE, "prompt": "a bridge that will HANG"}
    job_id = create(server, "/api/images/generate", body)
    clock.advance(3600)
    job = api_get(server, f"/api/jobs/{job_id}").json()
    assert (job["status"], job["progress"], job["result"]) == ("processing", 99, None)


def test_slow_marker_takes_ten_times_as_long(clocked):
    server, clock = clocked
    slow = create(server, "/api/images/generate", {**IMAGE, "prompt": "SLOW sunrise"})
    quick = create(server, "/api/images/generate", IMAGE)
    clock.advance(2.0)
    assert api_get(server, f"/api/jobs/{quick}").json()["status"] == "completed"
    assert api_get(server, f"/api/jobs/{slow}").json()["status"] == "processing"
    clock.advance(18.0)
    assert api_get(server, f"/api/jobs/{slow}").json()["status"] == "completed"


def test_malformed_json_truncates_answers(sandbox):
    sandbox.set_faults(malformed_json=1.0)
    answer = api_get(sandbox, "/api/workspaces")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(answer.content)
    assert sandbox.stats()["faults_injected"]["malformed_json"] == 1


def test_html_instead_of_json_answers_a_sign_in_page(sandbox):
    sandbox.set_faults(html_instead_of_json=1.0)
    answer = api_post(sandbox, "/api/claude/stories", STORY)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"Sign in" in answer.content
    stats = sandbox.stats()
    assert stats["jobs_created_total"] == 0 and stats["faults_injected"]["html"] == 1


def test_corrupt_images_are_truncated_pngs(sandbox):
    url = api_get(sandbox, "/api/session/proj_demo").json()["scenes"][0]["imageUrl"]
    whole = requests.get(url, timeout=TIMEOUT).content
    sandbox.set_faults(corrupt_images=True)
    broken = requests.get(url, timeout=TIMEOUT).content
    assert broken == whole[: len(broken)] and len(broken) < len(whole)
    with pytest.raises((OSError, SyntaxError)):
        Image.open(io.BytesIO(broken)).load()
    assert sandbox.stats()["faults_injected"]["corrupt_image"] == 1


def test_huge_images_are_decompression_bombs(sandbox):
    url = api_get(sandbox, "/api/session/proj_demo").json()["scenes"][0]["imageUrl"]
    sandbox.set_faults(huge_images=True)
    answer = requests.get(url, timeout=TIMEOUT)
    assert answer.headers["Content-Type"] == "image/png"
    assert png_size(answer.content) == (20000, 20000)
    assert len(answer.content) < 1_000_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(answer.content))
    assert sandbox.stats()["faults_injected"]["huge_image"] == 1


def test_empty_200_answers_job_reads_with_nothing(sandbox):
    job_id = create(sandbox, "/api/claude/stories", STORY)
    sandbox.set_faults(empty_200=1.0)
    answer = api_get(sandbox, f"/api/jobs/{job_id}")
    assert (answer.status_code, answer.content) == (200, b"")
    assert api_get(sandbox, "/api/workspaces").content != b""  # only job reads are emptied
    assert sandbox.stats()["faults_injected"]["empty_200"] == 1


def test_job_404_seconds_hides_new_jobs_for_a_while(clocked):
    server, clock = clocked
    server.set_faults(job_404_seconds=3)
    job_id = create(server, "/api/claude/stories", STORY)
    assert api_get(server, f"/api/jobs/{job_id}").status_code == 404
    clock.advance(3)
    assert api_get(server, f"/api/jobs/{job_id}").json()["status"] == "completed"
    assert server.stats()["faults_injected"]["job_404"] == 1


@pytest.mark.parametrize("envelope", ["job", "data"])
def test_envelope_wraps_the_job(sandbox, envelope):
    sandbox.set_faults(envelope=envelope)
    job_id = create(sandbox, "/api/claude/stories", STORY)
    body = api_get(sandbox, f"/api/jobs/{job_id}").json()
    assert list(body) == [envelope] and body[envelope]["jobId"] == job_id


def test_rotate_envelope_cycles_wrappers_synonyms_and_progress_forms(clocked):
    server, clock = clocked
    server.set_faults(envelope="rotate")
    job_id = create(server, "/api/claude/stories", STORY)
    clock.advance(1.0)  # 44.4% done
    wrappers, statuses, progress = set(), set(), set()
    for _ in range(20):
        body = api_get(server, f"/api/jobs/{job_id}").json()
        wrapper = next(iter(body)) if set(body) & {"job", "data"} else "bare"
        job = body if wrapper == "bare" else body[wrapper]
        assert job_id in (job.get("jobId"), job.get("id"), job.get("job_id"))
        wrappers.add(wrapper)
        statuses.add(job["status"])
        progress.add(repr(job["progress"]))
    assert wrappers == {"bare", "job", "data"}
    assert statuses == {"processing", "in_progress", "running", "generating"}
    assert progress == {"44", "0.444", "'44%'", "44.4", "None"}


@pytest.mark.parametrize("shape,reader", [
    ("output_list", lambda r: r["output"][0]),
    ("images_objects", lambda r: r["images"][0]["url"]),
    ("nested", lambda r: r["data"]["image_url"]),
    ("data_url", lambda r: r["image"]),
    ("b64", lambda r: r["b64_json"]),
])
def test_image_shape_changes_how_the_result_points_at_the_image(sandbox, shape, reader):
    sandbox.set_faults(image_shape=shape)
    job = wait_job(sandbox, create(sandbox, "/api/images/generate", {**IMAGE, "aspectRatio": "1:1"}))
    where = reader(job["result"])
    if shape == "data_url":
        assert where.startswith("data:image/png;base64,")
        data = base64.b64decode(where.split(",", 1)[1])
    elif shape == "b64":
        data = base64.b64decode(where)
    else:
        assert where == f"{sandbox.file_url}/files/{job['id']}.png"
        data = requests.get(where, timeout=TIMEOUT).content
    assert png_size(data) == (1024, 1024)


# --- lifecycle, persistence, packaging ---------------------------------------------------------


def test_sqlite_data_dir_survives_a_restart(tmp_path):
    with SandboxServer(job_seconds=0.1, data_dir=tmp_path, debug_routes=True) as first:
        token = first.issue_token(ttl=600)
        job_id = create(first, "/api/claude/stories", {**STORY, "projectId": "proj_kept"})
        story = wait_job(first, job_id)["result"]
    assert (tmp_path / "sandbox.sqlite3").exists()
    with SandboxServer(job_seconds=0.1, data_dir=tmp_path, debug_routes=True) as second:
        job = api_get(second, f"/api/jobs/{job_id}").json()
        assert job["status"] == "completed" and job["result"] == story
        assert api_get(second, "/api/session/proj_kept").json()["story"] == story
        assert api_get(second, "/api/workspaces", headers=headers(second, token)).status_code == 200
        listed = {s["id"] for s in api_get(second, "/api/session/list").json()["sessions"]}
        assert listed == {"proj_demo", "proj_partial", "proj_kept"}


def test_stop_closes_both_servers_and_keep_alive_connections():
    server = SandboxServer(debug_routes=True).start()
    session = requests.Session()
    session.headers.update(headers(server))
    assert session.get(server.api_url + "/workspaces", timeout=TIMEOUT).ok
    origin, file_url = server.origin, server.file_url
    server.stop()
    for url in (origin + "/api/workspaces", file_url + "/files/x.png"):
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=TIMEOUT)
    session.close()
    server.stop()  # idempotent


def test_importing_the_package_loads_neither_pillow_nor_torch():
    code = ("import sys, sandbox, sandbox.server; "
            "print(sorted(m for m in ('PIL', 'torch', 'numpy', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACK_DIR, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_serves_until_interrupted(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--job-seconds", "0.2", "--token", "cli-token",
         "--data-dir", str(tmp_path), "--debug-routes"],
        cwd=PACK_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("3DLabs sandbox API: http://127.0.0.1:")
        api_url = lines[0].split()[3]
        assert api_url.endswith("/api") and "(files: http://127.0.0.1:" in lines[0]
        assert lines[1].strip() == "Token: cli-token"
        assert lines[2].startswith(f"Use: THREEDLABS_BASE_URL={api_url} THREEDLABS_TOKEN=cli-token")
        answer = requests.get(api_url + "/workspaces", headers={"Authorization": "Bearer cli-token"},
                              timeout=TIMEOUT)
        assert answer.status_code == 200
        # The README's short-lived token hint works as printed: the command mints a JWT the API takes.
        origin = api_url[: -len("/api")]
        assert lines[3].strip() == (f"Short-lived tokens: THREEDLABS_TOKEN_COMMAND='curl -s -X POST "
                                    f"{origin}/__sandbox/token?ttl=60&format=text'")
        minted = requests.post(f"{origin}/__sandbox/token?ttl=60&format=text", timeout=TIMEOUT).text
        answer = requests.get(api_url + "/workspaces", headers={"Authorization": f"Bearer {minted}"},
                              timeout=TIMEOUT)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()
            process.stderr.close()


def test_cli_offers_debug_routes_only_when_asked():
    helped = subprocess.run([sys.executable, "-m", "sandbox", "--help"], cwd=PACK_DIR, capture_output=True,
                            text=True, timeout=60, check=True)
    assert "--debug-routes" in helped.stdout and "/__sandbox/token" in helped.stdout
    main = pack_module("sandbox.__main__")
    assert main._parser().parse_args([]).debug_routes is False
    assert main._parser().parse_args(["--debug-routes"]).debug_routes is True


def test_module_files_are_small_and_documented():
    for path in sorted(Path(PACK_DIR, "sandbox").glob("*.py")):
        text = path.read_text()
        assert text.startswith('"""'), f"{path.name} lacks a module docstring"
        assert "import torch" not in text and "from nodes" not in text and "from ..nodes" not in text
