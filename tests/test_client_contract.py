"""The client against the sandbox over real HTTP: every endpoint, every error class, the retry rules."""

from __future__ import annotations

import socket
import sys
import time

import pytest
from fixtures_images import png_size

from conftest import jobs_created, pack_module
from node_runner import collect_jobs, submit_job

client_mod = pack_module("nodes.api.client")
config = pack_module("nodes.api.config")
errors = pack_module("nodes.api.errors")
http = pack_module("nodes.api.http")
models = pack_module("nodes.api.models")
Journal = pack_module("nodes.api.journal").Journal


@pytest.fixture
def make_client(sandbox, tmp_path):
    made = []

    def make(**settings_kw):
        settings = config.load_settings(**{k: v for k, v in settings_kw.items() if k in ("base_url", "workspace_id")})
        fast = http.RetryPolicy(max_attempts=settings_kw.get("attempts", 5), max_total_seconds=10, base_delay=0.05,
                                max_delay=0.2)
        c = client_mod.ThreeDLabsClient(settings, journal=Journal(tmp_path / "jobs.sqlite3"), retry=fast)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_full_pipeline_over_http(sandbox, make_client):
    c = make_client()
    story_id = submit_job(c, "story", "A robot learns to paint", 1)
    [story_job] = collect_jobs(c, [story_id], 30)
    story = c.story_of(story_job)
    assert story.title and "robot" in story.text.lower()

    plan_id = submit_job(c, "scene-plan", story.raw, 1, video_model="veo-3")
    plan = c.scene_plan_of(collect_jobs(c, [plan_id], 30)[0])
    assert len(plan.scenes) >= 2
    assert [s.number for s in plan.scenes] == list(range(1, len(plan.scenes) + 1))
    assert all(s.image_prompt and s.duration and s.duration > 0 for s in plan.scenes)

    image_id = submit_job(c, "image", plan.scenes[0].image_prompt, aspect_ratio="16:9", scene_number=1)
    [image_job] = collect_jobs(c, [image_id], 30)
    [ref] = c.image_refs_of(image_job)
    assert ref.kind == "url" and ref.value.startswith(sandbox.file_url)
    assert png_size(c.fetch_image(ref)) == (1344, 768)

    stats = sandbox.stats()
    assert jobs_created(sandbox) == {"story": 1, "scene-planning": 1, "image": 1}
    assert stats["file_requests"] == 1
    assert stats["file_requests_with_authorization"] == 0

    recorded = c.journal.jobs()
    assert list(recorded) == [story_id, plan_id, image_id]
    assert all(r["state"] == models.SUCCEEDED for r in recorded.values())


@pytest.mark.parametrize("ratio, size", [("9:16", (768, 1344)), ("1:1", (1024, 1024)), ("4:3", (1152, 896))])
def test_aspect_ratios(sandbox, make_client, ratio, size):
    c = make_client()
    job = collect_jobs(c, [submit_job(c, "image", "a red kite", aspect_ratio=ratio, model="flux-dev")], 30)[0]
    assert png_size(c.fetch_image(c.image_refs_of(job)[0])) == size


def test_workspaces_and_projects(sandbox, make_client):
    c = make_client()
    assert {"ws_sandbox", "ws_team"} <= {w.id for w in c.list_workspaces()}
    projects = c.list_projects()
    assert "proj_demo" in {p.id for p in projects}
    project = c.get_project("proj_demo")
    assert project.story is not None and project.story.text
    assert len(project.scene_plan.scenes) == 4 and len(project.images) == 4
    assert png_size(c.fetch_image(project.images[0]))[0] > 0
    team = make_client(workspace_id="ws_team")
    assert "proj_demo" in {p.id for p in team.list_projects()}


def test_workspace_header_is_sent(sandbox, make_client):
    with pytest.raises(errors.ForbiddenError) as info:
        make_client(workspace_id="ws_nope").list_projects()
    assert "ws_nope" in str(info.value) and info.value.status == 403


def test_not_found(sandbox, make_client):
    with pytest.raises(errors.NotFoundError) as info:
        make_client().get_job("job_never_existed")
    assert info.value.status == 404


def test_invalid_request_carries_the_servers_message_and_makes_no_job(sandbox, make_client):
    c = make_client()
    with pytest.raises(errors.InvalidRequestError) as info:
        c.transport.post_job("claude/stories", {"topic": "", "maxMinutes": 9})
    assert info.value.status == 400 and "topic" in str(info.value)
    assert sandbox.stats()["jobs_created_total"] == 0


def test_client_validation_refuses_before_any_request(sandbox, make_client):
    c = make_client()
    for kind, *args, fields in (("story", "  ", 1, {}), ("story", "x", 7, {}), ("story", "x", 1, {"provider": "gpt"}),
                                ("image", "x", {"aspect_ratio": "2:1"}), ("image", "", {}),
                                ("scene-plan", "{not json", 1, {})):
        with pytest.raises(errors.ValidationError):
            submit_job(c, kind, *args, **fields)
    assert sandbox.stats()["requests_total"] == 0


def test_missing_token(sandbox, make_client, monkeypatch):
    monkeypatch.delenv("THREEDLABS_TOKEN")
    with pytest.raises(errors.AuthError) as info:
        make_client().list_projects()
    assert "THREEDLABS_TOKEN" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0


def test_invalid_token_reports_clerks_reason(sandbox, make_client, monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN", "not-a-real-token-1234567890")
    with pytest.raises(errors.AuthError) as info:
        make_client().list_projects()
    assert "session-token-invalid" in str(info.value) and info.value.status == 401
    assert "not-a-real-token-1234567890" not in str(info.value)


def test_expired_token_404_with_clerk_headers_is_auth(sandbox, make_client, monkeypatch):
    token = sandbox.issue_token(ttl=0.2)
    monkeypatch.setenv("THREEDLABS_TOKEN", token)
    time.sleep(0.5)
    with pytest.raises(errors.AuthError) as info:
        make_client().list_projects()
    assert info.value.status == 404 and "session-token-expired" in str(info.value)


def test_revoked_token_gives_one_auth_error_without_retry_storm(sandbox, make_client, monkeypatch):
    token = sandbox.issue_token(ttl=60)
    sandbox.revoke(token)
    monkeypatch.setenv("THREEDLABS_TOKEN", token)
    with pytest.raises(errors.AuthError):
        make_client().get_job("job_x")
    assert sandbox.stats()["requests_total"] == 1


def token_command(sandbox, ttl: float) -> str:
    url = f"{sandbox.origin}/__sandbox/token?ttl={ttl}&format=text"
    return f"{sys.executable} -c \"import urllib.request as u; print(u.urlopen(u.Request('{url}', " \
           f"method='POST')).read().decode())\""


def test_token_command_refreshes_across_a_job_that_outlives_the_token(sandbox, make_client, monkeypatch):
    monkeypatch.delenv("THREEDLABS_TOKEN")
    # Tokens live 1.5 s, under the refresh margin: each request mints a fresh one; the job takes 4 s.
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", token_command(sandbox, 1.5))
    sandbox.job_seconds = 4.0
    c = make_client()
    job_id = submit_job(c, "image", "a slow lighthouse")
    [job] = collect_jobs(c, [job_id], 30)
    assert job.status == models.SUCCEEDED
    assert sandbox.stats()["auth_failures"] == 0


def test_token_command_rerun_once_after_401(sandbox, make_client, monkeypatch, tmp_path):
    # The command's first token is revoked on the server: the 401 triggers one fresh run.
    bad = sandbox.issue_token(ttl=3600)
    sandbox.revoke(bad)
    marker = tmp_path / "first"
    url = f"{sandbox.origin}/__sandbox/token?ttl=3600&format=text"
    script = tmp_path / "cmd.py"
    script.write_text(
        "import pathlib, urllib.request as u\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        f"if not m.exists():\n    m.write_text('x'); print({bad!r})\n"
        f"else:\n    print(u.urlopen(u.Request({url!r}, method='POST')).read().decode())\n")
    monkeypatch.delenv("THREEDLABS_TOKEN")
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", f"{sys.executable} {script}")
    assert "proj_demo" in {p.id for p in make_client().list_projects()}
    assert sandbox.stats()["auth_failures"] == 1


def test_gets_retry_5xx_and_429(sandbox, make_client):
    sandbox.set_faults(error_rate=0.5, fault_seed=7, retry_after=0)
    c = make_client(attempts=8)
    for _ in range(10):
        assert c.list_workspaces()
    stats = sandbox.stats()
    assert stats["faults_injected"].get("429", 0) + stats["faults_injected"].get("5xx", 0) > 0


def test_gets_give_up_after_a_bounded_count(sandbox, make_client):
    sandbox.set_faults(error_rate=1.0, retry_after=0)
    c = make_client(attempts=3)
    with pytest.raises((errors.ServerError, errors.RateLimitedError)):
        c.list_workspaces()
    assert sandbox.stats()["requests_total"] == 3


def test_post_retried_on_429_but_never_after_503(sandbox, make_client):
    """A 429 says no job was made: sent again. A 503 proves nothing: raised as 'the job may exist'."""
    sandbox.set_faults(post_error_rate=0.6, fault_seed=3, retry_after=0)
    c = make_client(attempts=10)
    ids, maybe = [], 0
    for i in range(8):
        try:
            ids.append(submit_job(c, "image", f"kite {i}"))
        except errors.MaybeSubmittedServerError as err:
            assert err.status == 503 and "may exist" in str(err)
            maybe += 1
    stats = sandbox.stats()
    assert ids and maybe, "the seed no longer gives both outcomes: the test proves nothing"
    assert len(set(ids)) == len(ids) == stats["jobs_created"]["image"]
    # Every 503 ended its submission after one POST; only 429s were followed by another.
    assert stats["requests"]["POST /api/images/generate"] == len(ids) + maybe + stats["faults_injected"]["429"]


def test_post_dropped_after_create_is_not_resent(sandbox, make_client):
    sandbox.set_faults(drop_after_create=True)
    c = make_client()
    with pytest.raises(errors.MaybeSubmittedError) as info:
        submit_job(c, "image", "a lighthouse")
    assert "Job Wait" in str(info.value) and "not re-sent" in str(info.value)
    stats = sandbox.stats()
    assert stats["jobs_created"]["image"] == 1
    assert stats["requests"]["POST /api/images/generate"] == 1
    lost = list(c.journal.jobs().values())
    assert lost and lost[0]["label"].startswith("answer lost")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_a_network_error_and_post_is_retried(monkeypatch, make_client):
    monkeypatch.setenv("THREEDLABS_BASE_URL", f"http://127.0.0.1:{free_port()}/api")
    c = make_client(attempts=3)
    sent = []
    real_send = c.transport.session.send
    monkeypatch.setattr(c.transport.session, "send", lambda request, **kw: sent.append(request) or real_send(
        request, **kw))
    with pytest.raises(errors.NetworkError) as info:
        submit_job(c, "image", "a lighthouse")
    assert not isinstance(info.value, errors.MaybeSubmittedError)
    assert "THREEDLABS_BASE_URL" in str(info.value) and "PROXY" in str(info.value)
    assert [r.method for r in sent] == ["POST"] * 3  # never reached a server: safe to try again


def test_job_failed_names_the_job(sandbox, make_client):
    c = make_client()
    job_id = submit_job(c, "image", "please FAIL this one")
    with pytest.raises(errors.JobFailedError) as info:
        collect_jobs(c, [job_id], 30)
    assert job_id in str(info.value) and "failed" in str(info.value)
    assert c.journal.find(job_id)["state"] == models.FAILED


def test_job_timeout_says_it_may_still_run(sandbox, make_client):
    c = make_client()
    job_id = submit_job(c, "image", "HANG forever")
    with pytest.raises(errors.JobTimeoutError) as info:
        collect_jobs(c, [job_id], 1.0)
    assert job_id in str(info.value) and "Job Wait" in str(info.value)


def test_many_jobs_one_failure_keeps_others(sandbox, make_client):
    c = make_client()
    ids = [submit_job(c, "image", p) for p in ("one", "two FAIL", "three")]
    with pytest.raises(errors.BatchError) as info:
        collect_jobs(c, ids, 30)
    assert [f.index for f in info.value.failures] == [1]
    assert info.value.results[0].status == models.SUCCEEDED and info.value.results[2].status == models.SUCCEEDED


@pytest.mark.parametrize("envelope", ["bare", "job", "data", "rotate"])
def test_envelopes_are_read(sandbox, make_client, envelope):
    sandbox.set_faults(envelope=envelope)
    c = make_client()
    ids = [submit_job(c, "image", f"kite {i}") for i in range(3)]
    assert [j.status for j in collect_jobs(c, ids, 30)] == [models.SUCCEEDED] * 3


@pytest.mark.parametrize("shape", ["url", "output_list", "images_objects", "data_url", "b64", "nested"])
def test_image_shapes_are_read(sandbox, make_client, shape):
    sandbox.set_faults(image_shape=shape)
    c = make_client()
    job = collect_jobs(c, [submit_job(c, "image", "a kite", aspect_ratio="1:1")], 30)[0]
    [ref] = c.image_refs_of(job)
    assert png_size(c.fetch_image(ref)) == (1024, 1024)


def test_eventual_consistency_404_after_create_is_tolerated(sandbox, make_client):
    sandbox.set_faults(job_404_seconds=0.8)
    c = make_client()
    assert collect_jobs(c, [submit_job(c, "image", "kite")], 30)[0].status == models.SUCCEEDED


def test_malformed_and_empty_answers_on_gets_are_retried(sandbox, make_client):
    sandbox.set_faults(malformed_json=0.3, empty_200=0.3, fault_seed=11)
    c = make_client(attempts=10)
    for _ in range(8):
        assert {w.id for w in c.list_workspaces()} >= {"ws_sandbox"}
    assert sandbox.stats()["faults_injected"].get("malformed_json", 0) > 0


def test_sign_in_page_is_an_auth_error(sandbox, make_client):
    sandbox.set_faults(html_instead_of_json=1.0)
    with pytest.raises(errors.AuthError) as info:
        make_client().list_projects()
    assert "sign-in page" in str(info.value)


def test_user_agent_names_the_pack():
    version = pack_module("nodes.api.version")
    assert version.USER_AGENT.startswith(f"comfyui-3dlabs/{version.__version__}")
    import tomllib

    from conftest import PACK_DIR

    assert tomllib.loads((PACK_DIR / "pyproject.toml").read_text())["project"]["version"] == version.__version__


def test_out_of_credits_is_402_and_makes_no_job(sandbox, make_client):
    sandbox.set_faults(out_of_credits=True)
    with pytest.raises(errors.OutOfCreditsError) as info:
        submit_job(make_client(), "image", "a lighthouse")
    assert info.value.status == 402 and "credits" in str(info.value)
    assert sandbox.stats()["jobs_created_total"] == 0


def test_server_error_after_bounded_retries(sandbox, make_client):
    sandbox.set_faults(server_down=True)
    c = make_client(attempts=2)
    with pytest.raises(errors.ServerError) as info:
        c.list_projects()
    assert info.value.status == 500
    assert sandbox.stats()["requests_total"] == 1  # a 500 is not one of the retried statuses
    with pytest.raises(errors.ServerError):
        submit_job(c, "image", "x")
    assert sandbox.stats()["jobs_created_total"] == 0


def test_redirects_are_never_followed_with_the_token(sandbox, make_client):
    sandbox.set_faults(redirect_to=f"{sandbox.file_url}/files/elsewhere.png")
    with pytest.raises(errors.ServerError) as info:
        make_client().list_projects()
    assert "redirect" in str(info.value)
    assert sandbox.stats()["file_requests"] == 0
    sandbox.set_faults(redirect_to="https://accounts.example.com/sign-in?redirect_url=x")
    with pytest.raises(errors.AuthError):
        make_client().list_projects()


def test_image_downloads_never_carry_the_token_to_the_file_host(sandbox, make_client):
    c = make_client()
    ids = [submit_job(c, "image", f"kite {i}") for i in range(3)]
    for job in collect_jobs(c, ids, 30):
        for ref in c.image_refs_of(job):
            c.fetch_image(ref)
    stats = sandbox.stats()
    assert stats["file_requests"] == 3 and stats["file_requests_with_authorization"] == 0


def _one_finished_image(c):
    [job] = collect_jobs(c, [submit_job(c, "image", "kite over the harbour")], 30)
    [ref] = c.image_refs_of(job)
    return ref


def test_images_served_by_the_api_host_get_the_token(sandbox, make_client):
    sandbox.set_faults(image_host="api")
    c = make_client()
    ref = _one_finished_image(c)
    assert ref.value.startswith(f"{sandbox.origin}/api/files/")
    assert png_size(c.fetch_image(ref)) == (1344, 768)
    stats = sandbox.stats()
    assert stats["file_requests"] == 1 and stats["file_requests_with_authorization"] == 1
    assert stats["auth_failures"] == 0


def test_image_download_fetches_a_fresh_command_token_once_after_a_refusal(sandbox, make_client, monkeypatch):
    # The job is paid for; a command-made token that expired between the last poll and the download
    # must not lose the picture.
    sandbox.set_faults(image_host="api")
    monkeypatch.delenv("THREEDLABS_TOKEN")
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", token_command(sandbox, 3600))
    c = make_client()
    ref = _one_finished_image(c)
    used = c.tokens.get()
    sandbox.revoke(used)
    assert png_size(c.fetch_image(ref)) == (1344, 768)
    assert c.tokens.get() != used
    stats = sandbox.stats()
    assert stats["auth_failures"] == 1 and stats["file_requests"] == 1


def test_image_download_with_a_refused_static_token_names_clerks_reason(sandbox, make_client, monkeypatch):
    sandbox.set_faults(image_host="api")
    token = sandbox.issue_token(ttl=600)
    monkeypatch.setenv("THREEDLABS_TOKEN", token)
    c = make_client()
    ref = _one_finished_image(c)
    sandbox.revoke(token)
    with pytest.raises(errors.ImageDownloadError) as info:
        c.fetch_image(ref)
    message = str(info.value)
    assert "session-token-invalid" in message and "HTTP 401" in message
    assert "THREEDLABS_TOKEN_COMMAND" in message and token not in message
    assert info.value.status == 401
    assert sandbox.stats()["auth_failures"] == 1  # a token that cannot be renewed is not sent again


def test_corrupt_and_huge_images_are_typed_errors(sandbox, make_client):
    images = pack_module("nodes.images")
    c = make_client()
    job = collect_jobs(c, [submit_job(c, "image", "kite")], 30)[0]
    [ref] = c.image_refs_of(job)
    sandbox.set_faults(corrupt_images=True)
    with pytest.raises(errors.ImageDecodeError) as info:
        images.decode_image(c.fetch_image(ref), source=f"job {job.id}")
    assert job.id in str(info.value)
    sandbox.set_faults(corrupt_images=False, huge_images=True)
    with pytest.raises(errors.ImageTooLargeError):
        images.decode_image(c.fetch_image(ref), source=f"job {job.id}")


def test_image_size_cap_stops_the_download(sandbox, make_client):
    c = make_client()
    job = collect_jobs(c, [submit_job(c, "image", "kite")], 30)[0]
    with pytest.raises(errors.ImageTooLargeError):
        c.fetch_image(c.image_refs_of(job)[0], max_bytes=1000)


def test_only_http_and_data_urls_are_fetched(make_client, sandbox):
    models = pack_module("nodes.api.models")
    with pytest.raises(errors.ImageDownloadError):
        make_client().fetch_image(models.ImageRef("url", "file:///etc/passwd"))


def test_rate_limited_error_carries_retry_after(sandbox, make_client):
    # The sandbox answers a POST with 429 or 503 by seeded dice: find a seed whose first answer is 429.
    c = make_client(attempts=1)
    for seed in range(40):
        sandbox.set_faults(post_error_rate=1.0, fault_seed=seed, retry_after=7)
        try:
            submit_job(c, "image", "a kite")
        except errors.RateLimitedError as err:
            assert err.status == 429 and err.retry_after == 7.0
            assert "rate limiting" in str(err)
            break
        except errors.ServerError as err:
            assert err.status == 503
    else:
        pytest.fail("no seed gave a 429")
    assert sandbox.stats()["jobs_created_total"] == 0
