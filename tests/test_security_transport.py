"""The transport under attack, over real HTTP on loopback: who gets the token, how long a download may
take, how much an answer may weigh, when a job-creating POST is sent again, and what redaction hides.

Each test plays the attack for real with scripted servers (tests/scripted_server.py) started here: an
"attacker" host that records every header it receives, a fake API whose answers name tricky result
URLs, image hosts that drip, redirect or never stop, and an API that answers a job-creating POST with
503 or 429.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from fixtures_images import png
from scripted_server import ScriptedServer, send, send_json

from conftest import load_pack, pack_module
from node_runner import cancel_after, collect_jobs, submit_job

load_pack()
auth = pack_module("nodes.api.auth")
client_mod = pack_module("nodes.api.client")
comfy = pack_module("nodes.comfy")
config = pack_module("nodes.api.config")
errors = pack_module("nodes.api.errors")
redaction = pack_module("nodes.api.redaction")
http = pack_module("nodes.api.http")
models = pack_module("nodes.api.models")
Journal = pack_module("nodes.api.journal").Journal

SECRET = "zqTransportCanary7e6d5c4b3a2918"  # matches no token-shaped pattern: only registration masks it


PNG = png((200, 10, 10), (4, 4))


@pytest.fixture
def servers():
    made: list[ScriptedServer] = []

    def start(handle) -> ScriptedServer:
        server = ScriptedServer(handle)
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()


class FakeApi:
    """A fake 3DLabs API: jobs and projects whose results the test chooses."""

    def __init__(self, servers) -> None:
        self.jobs: dict[str, object] = {}
        self.projects: dict[str, dict] = {}
        self.post_answers: list[tuple[int, object, dict]] = []  # consumed in order; the last one repeats
        self.server = servers(self._handle)

    def _handle(self, h, body: bytes) -> None:
        path = h.path
        if h.command == "POST":
            status, value, headers = self.post_answers[0] if len(self.post_answers) == 1 else self.post_answers.pop(0)
            send_json(h, status, value, headers)
        elif path.startswith("/api/jobs/") and path[len("/api/jobs/"):] in self.jobs:
            send_json(h, 200, {"status": "succeeded", "progress": 1, "result": self.jobs[path[len("/api/jobs/"):]]})
        elif path.startswith("/api/session/") and path[len("/api/session/"):] in self.projects:
            send_json(h, 200, self.projects[path[len("/api/session/"):]])
        elif path.endswith(".png"):
            send(h, 200, PNG, "image/png")
        else:
            send_json(h, 404, {"error": "not found"})

    @property
    def port(self) -> int:
        return self.server.port

    def api_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/api"


@pytest.fixture
def api(servers):
    return FakeApi(servers)


@pytest.fixture
def attacker(servers):
    """Another host on the same machine: it records what it receives and serves a valid image."""
    return servers(lambda h, body: send(h, 200, PNG, "image/png"))


@pytest.fixture
def make_client(tmp_path):
    made = []

    def make(api_url: str, *, attempts: int = 5):
        settings = config.load_settings(base_url=api_url)
        tokens = auth.TokenProvider(auth.TokenSource("token", SECRET, "test"))
        retry = http.RetryPolicy(max_attempts=attempts, max_total_seconds=60, base_delay=0.01, max_delay=0.05)
        c = client_mod.ThreeDLabsClient(settings, tokens=tokens, journal=Journal(tmp_path / "jobs.sqlite3"),
                                        retry=retry)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def collect(client, job_id: str):
    """Fetch a finished job's images the way Image Generate and Job Wait do."""
    job = client.get_job(job_id)
    # As a node run's worker does (nodes/run.py): each image with its job named, ComfyUI's interrupt as Cancel.
    data = [client.fetch_image(ref, job_id=job.id, cancel_check=comfy.check_interrupt)
            for ref in client.image_refs_of(job)]
    return data, [f"job {job.id}"] * len(data)


def outcome_of(fn):
    """What ``fn`` raised (or None), so that the leak is checked before the error."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  the test checks the type
        return exc
    return None


# --- 1. the token goes only where the sending library really connects --------------------------


def tricky_urls(attacker_port: int, api_port: int) -> dict[str, str]:
    return {
        "backslash": f"http://127.0.0.1:{attacker_port}\\@127.0.0.1:{api_port}/x.png",
        "backslash localhost": f"http://localhost:{attacker_port}\\@localhost:{api_port}/x.png",
        "backslash in path": f"http://127.0.0.1:{attacker_port}/\\@127.0.0.1:{api_port}/x.png",
    }


@pytest.mark.parametrize("variant", ["backslash", "backslash localhost", "backslash in path"])
def test_job_result_url_hiding_another_host_gets_no_token(api, attacker, make_client, variant):
    url = tricky_urls(attacker.port, api.port)[variant]
    host = "localhost" if "localhost" in variant else "127.0.0.1"
    api.jobs["job_tricky1"] = {"url": url}
    c = make_client(api.api_url(host))
    err = outcome_of(lambda: collect(c, "job_tricky1"))
    assert attacker.authorizations() == [], "the attacker host received the token"
    assert attacker.requests == [], "a refused URL was fetched anyway"
    assert isinstance(err, errors.ImageDownloadError), err
    assert "job_tricky1" in str(err) and err.job_id == "job_tricky1"
    assert SECRET not in str(err)


def test_redirect_from_an_image_host_to_a_tricky_url_gets_no_token(api, attacker, servers, make_client):
    tricky = tricky_urls(attacker.port, api.port)["backslash"]
    cdn = servers(lambda h, body: send(h, 302, b"", headers={"Location": tricky}))
    api.jobs["job_redirect1"] = {"url": f"{cdn.origin}/r.png"}
    c = make_client(api.api_url())
    err = outcome_of(lambda: collect(c, "job_redirect1"))
    assert attacker.authorizations() == [], "the attacker host received the token"
    assert attacker.requests == [] and cdn.authorizations() == []
    assert isinstance(err, errors.ImageDownloadError) and "job_redirect1" in str(err), err


def test_project_image_url_hiding_another_host_gets_no_token(api, attacker, make_client):
    tricky = tricky_urls(attacker.port, api.port)["backslash"]
    api.projects["proj_1"] = {"id": "proj_1", "name": "Shared", "images": [tricky]}
    c = make_client(api.api_url())
    project = c.get_project("proj_1")
    assert project.images, "the reader dropped the URL: the attack was not played"
    err = outcome_of(lambda: c.fetch_image(project.images[0]))
    assert attacker.authorizations() == [], "the attacker host received the token"
    assert attacker.requests == [] and isinstance(err, errors.ImageDownloadError), err


@pytest.mark.parametrize("shape", ["userinfo", "space", "tab", "port 99999", "port 0"])
def test_odd_urls_are_refused_before_any_request_naming_the_job(api, attacker, make_client, shape):
    url = {
        "userinfo": f"http://user:pw@127.0.0.1:{attacker.port}/x.png",
        "space": f"http://127.0.0.1:{attacker.port}/x .png",
        "tab": f"http://127.0.0.1:{attacker.port}/x\t.png",
        "port 99999": "http://127.0.0.1:99999/x.png",
        "port 0": "http://127.0.0.1:0/x.png",
    }[shape]
    api.jobs["job_odd1"] = {"url": url}
    c = make_client(api.api_url())
    # The transport refuses it whatever the readers let through (they refuse some shapes already).
    with pytest.raises(errors.ImageDownloadError) as info:
        c.fetch_image(models.ImageRef("url", url), job_id="job_odd1")
    assert "job_odd1" in str(info.value) and info.value.job_id == "job_odd1"
    try:
        refs = c.image_refs_of(c.get_job("job_odd1"))
    except errors.ResponseFormatError:
        refs = []
    if refs:
        with pytest.raises(errors.ImageDownloadError) as info:
            collect(c, "job_odd1")
        assert "job_odd1" in str(info.value)
    assert attacker.requests == []


def test_the_token_still_reaches_images_on_the_api_host(api, make_client):
    api.jobs["job_api_img"] = {"url": f"{api.server.origin}/api/files/x.png"}
    c = make_client(api.api_url())
    data, _ = collect(c, "job_api_img")
    assert data == [PNG]
    assert api.server.authorizations()[-1] == f"Bearer {SECRET}"


# --- 2. downloads end: an overall deadline, and Cancel ------------------------------------------


def dripping(server_holder: list):
    """An image host that sends headers, then one byte every 0.2 s of a 100 kB image."""
    def handle(h, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.flush()
        while not server_holder[0].stop_event.is_set():
            h.wfile.write(b"x")
            h.wfile.flush()
            server_holder[0].sent += 1
            time.sleep(0.2)
    return handle


class Stop(Exception):
    """What a test's own cancel check raises, told apart from every error of the pack."""


def stop_after(seconds: float):
    """A cancel check, as the client takes one, that stops the call ``seconds`` from now."""
    started = time.monotonic()

    def cancel_check():
        if time.monotonic() - started > seconds:
            raise Stop()

    return cancel_check


def in_thread(fn, limit: float):
    """Run ``fn``; return (finished, seconds, outcome) without hanging the suite if it never ends.

    ``seconds`` backs only generous liveness bounds ("returned before the sleep it was in ended"):
    how fast the pack gives up is the benchmark's business.
    """
    box: dict = {}

    def target():
        started = time.monotonic()
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001  the outcome is what the test checks
            box["error"] = exc
        box["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    return not thread.is_alive(), box.get("seconds"), box.get("error", box.get("value"))


def test_a_dripping_image_host_is_cut_off_at_the_deadline(api, servers, make_client):
    holder: list = []
    holder.append(servers(dripping(holder)))
    api.jobs["job_drip1"] = {"url": f"{holder[0].origin}/slow.png"}
    c = make_client(api.api_url())
    c.download_deadline = 1.5
    finished, _, outcome = in_thread(lambda: collect(c, "job_drip1"), limit=30)
    assert finished, "the download was still running after 30 s"
    # The deadline's own error (raised only once it has passed), long before the image could be whole.
    assert isinstance(outcome, errors.ImageDownloadError), outcome
    assert "job_drip1" in str(outcome) and "within the 1.5 s allowed" in str(outcome)
    assert 0 < holder[0].sent < 100000


def test_cancel_ends_a_dripping_download_promptly(api, servers, make_client):
    holder: list = []
    holder.append(servers(dripping(holder)))
    api.jobs["job_drip2"] = {"url": f"{holder[0].origin}/slow.png"}
    c = make_client(api.api_url())
    comfy.set_local_interrupt(False)
    with cancel_after(0.5):
        finished, seconds, outcome = in_thread(lambda: collect(c, "job_drip2"), limit=60)
    assert finished, "Cancel did not stop the download"
    assert isinstance(outcome, comfy.interrupt_exception_type()), outcome
    assert seconds < c.download_deadline, "the download ran into its deadline instead of ending on Cancel"


def test_cancel_check_ends_a_dripping_download_in_the_api_layer(servers, make_client):
    holder: list = []
    holder.append(servers(dripping(holder)))
    c = make_client("http://127.0.0.1:9/api")
    cancel_check = stop_after(0.5)

    finished, seconds, outcome = in_thread(
        lambda: c.fetch_image(models.ImageRef("url", f"{holder[0].origin}/slow.png"), cancel_check=cancel_check),
        limit=60)
    assert finished and isinstance(outcome, Stop), outcome
    assert seconds < c.download_deadline, "the download ran into its deadline instead of ending on Cancel"


def test_cancel_interrupts_the_sleep_between_download_retries(servers, make_client, monkeypatch):
    flaky = servers(lambda h, body: send(h, 503, b"busy", "text/plain"))
    c = make_client("http://127.0.0.1:9/api")
    # The client's one retry policy (shared with the API calls), waiting 30 s before the next try.
    monkeypatch.setattr(c.transport.retry, "delay", lambda attempt, retry_after: 30.0)
    cancel_check = stop_after(0.5)

    finished, seconds, outcome = in_thread(
        lambda: c.fetch_image(models.ImageRef("url", f"{flaky.origin}/x.png"), cancel_check=cancel_check), limit=60)
    assert finished and isinstance(outcome, Stop), outcome
    assert seconds < 30.0, "returned only after the 30 s retry sleep ended"
    assert len(flaky.requests) == 1


def test_downloads_retry_under_the_clients_one_policy(servers, make_client):
    """The API calls' retry policy bounds the downloads too: the same count, the same statuses."""
    busy = servers(lambda h, body: send(h, 503, b"busy", "text/plain", headers={"Retry-After": "0"}))
    gone = servers(lambda h, body: send(h, 500, b"broken", "text/plain"))
    c = make_client("http://127.0.0.1:9/api", attempts=3)
    with pytest.raises(errors.ImageDownloadError, match="HTTP 503"):
        c.fetch_image(models.ImageRef("url", f"{busy.origin}/x.png"))
    assert len(busy.requests) == 3
    with pytest.raises(errors.ImageDownloadError, match="HTTP 500"):
        c.fetch_image(models.ImageRef("url", f"{gone.origin}/x.png"))
    assert len(gone.requests) == 1, "a 500 is not among the statuses tried again"


# --- 3. JSON answers are read under a cap -------------------------------------------------------


def endless_json(holder: list, status: int = 200, limit: int = 256 * 1024 * 1024):
    """A JSON answer with no length that goes on (up to ``limit`` bytes); counts what it sent."""
    def handle(h, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        chunk = b'"' + b"a" * 65534 + b'",'
        h.wfile.write(b"[")
        while holder[0].sent < limit and not holder[0].stop_event.is_set():
            h.wfile.write(chunk)
            holder[0].sent += len(chunk)
    return handle


def test_an_endless_json_answer_is_cut_off_at_the_cap(servers, make_client):
    holder: list = []
    holder.append(servers(endless_json(holder)))
    c = make_client(holder[0].origin + "/api", attempts=1)
    c.transport.max_json_bytes = 2 * 1024 * 1024
    finished, seconds, outcome = in_thread(c.list_workspaces, limit=60)
    assert finished
    assert isinstance(outcome, errors.ResponseFormatError), outcome
    assert "2 MiB" in str(outcome)
    # Past the cap the answer is no longer read: what the server got out is the cap plus socket buffers.
    assert holder[0].sent < 64 * 1024 * 1024, holder[0].sent
    assert len(holder[0].requests) == 1, "a too-large answer was fetched again"


def test_the_default_json_cap_is_32_mib():
    assert http.MAX_JSON_BYTES == 32 * 1024 * 1024


def test_an_oversized_answer_to_a_job_post_is_maybe_submitted_and_not_resent(servers, make_client):
    holder: list = []
    holder.append(servers(endless_json(holder)))
    c = make_client(holder[0].origin + "/api")
    c.transport.max_json_bytes = 1024 * 1024
    finished, _, outcome = in_thread(lambda: submit_job(c, "image", "a kite", **IMAGE), limit=60)
    assert finished
    assert isinstance(outcome, errors.MaybeSubmittedError), outcome
    assert "1 MiB" in str(outcome)
    assert [m for m, _, _ in holder[0].requests] == ["POST"]
    assert holder[0].sent < 64 * 1024 * 1024


def test_a_declared_huge_json_answer_is_refused_unread(servers, make_client):
    def handle(h, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(400 * 1024 * 1024))
        h.end_headers()
        h.wfile.write(b"[" + b" " * 1024)
    server = servers(handle)
    c = make_client(server.origin + "/api", attempts=1)
    with pytest.raises(errors.ResponseFormatError, match="32 MiB"):
        c.list_workspaces()


# --- 4. job-creating POSTs: sent again only when no job can exist --------------------------------


IMAGE = dict(provider="replicate", model="flux-schnell", aspect_ratio="1:1")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_on_a_job_post_is_sent_once_and_says_the_job_may_exist(api, make_client, status):
    api.post_answers = [(status, {"error": "Service temporarily unavailable"}, {"Retry-After": "0"})]
    c = make_client(api.api_url(), attempts=5)
    with pytest.raises(errors.MaybeSubmittedError) as info:
        submit_job(c, "image", "a kite", **IMAGE)
    assert [m for m, _, _ in api.server.requests] == ["POST"]
    message = str(info.value)
    assert isinstance(info.value, errors.ServerError) and info.value.status == status
    assert "may exist" in message and "not re-sent" in message and "Recent Jobs" in message
    assert any(rec["label"].startswith("answer lost") for rec in c.journal.jobs().values())


def test_a_429_on_a_job_post_is_sent_again(api, make_client):
    api.post_answers = [(429, {"error": "slow down"}, {"Retry-After": "0"}), (200, {"jobId": "job_after429"}, {})]
    c = make_client(api.api_url())
    assert submit_job(c, "image", "a kite", **IMAGE) == "job_after429"
    assert [m for m, _, _ in api.server.requests] == ["POST", "POST"]


def test_cancel_interrupts_a_429_retry_after_sleep(api, make_client):
    api.post_answers = [(429, {"error": "slow down"}, {"Retry-After": "20"})]
    c = make_client(api.api_url())
    c.transport.retry = http.RetryPolicy()  # the real policy: a 20 s Retry-After is honoured
    cancel_check = stop_after(0.5)

    finished, seconds, outcome = in_thread(lambda: submit_job(c, "image", "a kite", cancel_check=cancel_check, **IMAGE),
                                           limit=60)
    assert finished and isinstance(outcome, Stop), outcome
    assert seconds < 20.0, "returned only after the 20 s Retry-After sleep ended"
    assert len(api.server.requests) == 1


def test_the_clients_own_cancel_check_interrupts_a_429_sleep(api, make_client):
    """Nodes give the client ComfyUI's interrupt check once; every retry sleep then honours it."""
    api.post_answers = [(429, {"error": "slow down"}, {"Retry-After": "20"})]
    c = make_client(api.api_url())
    c.transport.retry = http.RetryPolicy()  # the real policy: a 20 s Retry-After is honoured
    c.cancel_check = comfy.check_interrupt
    with cancel_after(0.5):
        finished, seconds, outcome = in_thread(lambda: submit_job(c, "image", "a kite", **IMAGE), limit=60)
    assert finished and isinstance(outcome, comfy.interrupt_exception_type()), outcome
    assert seconds < 20.0, "returned only after the 20 s Retry-After sleep ended"
    assert len(api.server.requests) == 1


# --- 5. redaction hides secrets, never job ids ---------------------------------------------------


@pytest.mark.parametrize("job_id", ["key_0123456789abcdefXYZ", "tdl-0123456789abcdef0123", "sk-0123456789abcdefghij"])
def test_key_shaped_job_ids_are_journaled_intact_and_collectable(api, make_client, job_id):
    api.post_answers = [(200, {"jobId": job_id}, {})]
    api.jobs[job_id] = {"url": f"{api.server.origin}/api/files/x.png"}
    c = make_client(api.api_url())
    assert submit_job(c, "image", "a kite", **IMAGE) == job_id
    assert c.journal.find(job_id) is not None, "the journal lost the paid job's id"
    assert job_id in {record["id"] for record in c.journal.recent(10)}
    job = c.get_job(job_id)
    assert job.status == models.SUCCEEDED and job.id == job_id
    collect_jobs(c, [job_id], 10)
    assert c.journal.find(job_id)["state"] == models.SUCCEEDED
    err = errors.JobFailedError("boom", job_id=job_id)
    assert job_id in str(err)


def test_registered_secrets_and_bearer_headers_are_still_masked(api, make_client):
    def echo(h, body: bytes) -> None:
        send_json(h, 400, {"error": f"bad header {h.headers.get('Authorization')} for key {SECRET}"})
    api.server.handle = echo
    c = make_client(api.api_url())
    c.tokens.get()  # registers the token
    with pytest.raises(errors.InvalidRequestError) as info:
        c.list_workspaces()
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert re.search(r"eyJ\w+\.\w+\.\w+", redaction.redact("token eyJhbGciOi.eyJzdWIiOjF9.c2ln")) is None


def test_the_secret_registry_stays_bounded_and_masks_the_newest():
    """A 60 s token command mints ~1,700 tokens a day; only the newest are kept, and they stay masked."""
    minted = [f"zqMinted{n:06d}Token" for n in range(5000)]
    for token in minted:
        redaction.register_secret(token)
    assert len(redaction._secrets) == redaction.MAX_SECRETS
    assert list(redaction._secrets) == minted[-redaction.MAX_SECRETS:]
    for token in minted[-redaction.MAX_SECRETS:]:
        assert redaction.redact(f"saw {token}.") == "saw ***.", token


def test_a_token_in_use_outlives_newer_registrations(api, make_client):
    c = make_client(api.api_url())
    c.tokens.get()
    for n in range(redaction.MAX_SECRETS * 2):
        redaction.register_secret(f"zqOtherToken{n:05d}x")
    c.tokens.get()  # every use registers it again
    assert redaction.redact(f"key {SECRET}") == "key ***"


@pytest.mark.parametrize("url", ["https://cdn.example.com/out/a.png?sig=abc%2F&exp=1", "http://[::1]:8080/x.png",
                                 "HTTPS://CDN.Example.com/x.png", "https://b\u00fccher.example/x.png"])
def test_ordinary_result_urls_are_not_refused(url):
    assert http.unsafe_url_reason(url) is None
