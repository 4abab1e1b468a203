"""Bad input: what a user can type into the nodes, what a broken API can answer, what a broken CDN
can serve, and what the pack does with each (docs/reliability.md has the table; a test below checks
that the table lists every case here).

API answers come from the tests' scripted server (tests/scripted_server.py: on loopback, each request
answered from a script), because the sandbox only misbehaves in the ways its fault flags describe.
Every case asserts what the user sees: the typed error, words of its message, the job id when a
job exists, and how many requests were sent (a POST that may have made a job is never re-sent).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import torch
from fixtures_images import png
from scripted_server import Answer, ScriptedServer, js, raw

from conftest import PACK_DIR, load_pack, pack_module
from node_runner import run
from reliability_report import report

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
models = pack_module("nodes.api.models")
jobs_engine = pack_module("nodes.api.jobs")
journal_mod = pack_module("nodes.api.journal")
sandbox_images = pack_module("sandbox.images")
spend = pack_module("nodes.spend")
N = pack.NODE_CLASS_MAPPINGS
E = errors

TOKEN = "scripted-bearer-7c1d9e0a4b"
JOB = "job_0001"

# --- the scripted API -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server():
    server = ScriptedServer()
    yield server
    server.stop()


@pytest.fixture
def api(api_server, monkeypatch, fast_retries, fast_polls):
    """The scripted API, empty, with the client pointed at it and the waits tuned down."""
    monkeypatch.setenv("THREEDLABS_BASE_URL", api_server.api_url)
    monkeypatch.setenv("THREEDLABS_TOKEN", TOKEN)
    monkeypatch.setattr(jobs_engine, "NOT_FOUND_GRACE_SECONDS", 0.3)
    for dotted, name in (("nodes.story", "STORY_TIMEOUT"), ("nodes.scenes", "PLAN_TIMEOUT"),
                         ("nodes.generate", "IMAGE_TIMEOUT")):
        monkeypatch.setattr(pack_module(dotted), name, 2.0)
    spend.reset_tallies()
    clients.reset_clients()
    comfy.set_local_interrupt(False)
    yield api_server.reset()
    clients.reset_clients()


def generate(prompts=("a red kite",), **over):
    args = dict(prompt=list(prompts), provider=["replicate"], model=["flux-schnell"], aspect_ratio=["16:9"],
                scene_number=[0], seed=[0], wait=[True], unique_id=["5"])
    args.update({k: [v] for k, v in over.items()})
    return run("3DLabsImageGenerate", **args)


def job_wait(job_id=JOB, timeout=5):
    return run("3DLabsJobWait", job_id=[job_id], timeout_seconds=[timeout], unique_id=["6"])


SIZE = (64, 48)  # the scripted CDN's pictures


def file_url(script, name="a.png") -> str:
    return f"{script.origin}/files/{name}"


def image_job(script, *job_answers: Answer, file: Answer | None = None, job_id=JOB) -> None:
    """POST answers with job_id; GET /api/jobs/<id> answers job_answers; the CDN serves file."""
    script.on("POST", "/api/images/generate", js({"jobId": job_id}))
    script.on("GET", f"/api/jobs/{job_id}", *(job_answers or (done(script),)))
    script.on("GET", "/files/a.png", file or raw(png(size=SIZE), content_type="image/png"))


def done(script, result=None) -> Answer:
    return js({"status": "completed", "progress": 100,
               "result": result if result is not None else {"imageUrl": file_url(script)}})


def raises(exc_type, fn, *words):
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
    assert TOKEN not in message
    return info.value


# --- the cases --------------------------------------------------------------------------------

CASES: dict[str, tuple[str, str, str, object]] = {}  # id -> (where, input, behaviour, test)


def case(case_id: str, where: str, given: str, behaviour: str):
    def register(fn):
        CASES[case_id] = (where, given, behaviour, fn)
        return fn
    return register


# node inputs: refused before any request (nothing is spent)

def refused(fn, *words):
    raises(E.ValidationError, fn, *words)


@case("topic-empty", "node input", "Story topic empty or only spaces", "ValidationError: the topic is empty")
def _(api):
    refused(lambda: run("3DLabsStory", topic="   \n", max_minutes=1, provider="gemini", seed=0), "topic is empty")


@case("topic-too-long", "node input", "Story topic of 5,000 characters", "ValidationError naming the 4,000 limit")
def _(api):
    refused(lambda: run("3DLabsStory", topic="x" * 5000, max_minutes=1, provider="gemini", seed=0), "4000")


@case("topic-not-text", "node input", "Story topic is a number (a wrong link)",
      "ValidationError: the topic is empty (only text counts as a topic)")
def _(api):
    refused(lambda: run("3DLabsStory", topic=42, max_minutes=1, provider="gemini", seed=0), "topic")


@case("minutes-out-of-range", "node input", "max_minutes 0 or 6", "ValidationError: must be from 1 to 5")
def _(api):
    for value in (0, 6):
        refused(lambda v=value: run("3DLabsStory", topic="t", max_minutes=v, provider="gemini", seed=0), "1 to 5")


@case("minutes-not-a-number", "node input", "max_minutes 'abc' or NaN", "ValidationError naming the value")
def _(api):
    refused(lambda: run("3DLabsStory", topic="t", max_minutes="abc", provider="gemini", seed=0), "'abc'")
    refused(lambda: run("3DLabsStory", topic="t", max_minutes=float("nan"), provider="gemini", seed=0), "nan")


@case("provider-unknown", "node input", "provider 'gpt-4'", "ValidationError listing gemini, claude")
def _(api):
    refused(lambda: run("3DLabsStory", topic="t", max_minutes=1, provider="gpt-4", seed=0), "gemini, claude")


@case("story-json-broken", "node input", "Scene Plan story text that is not JSON",
      "ValidationError with the JSON error's line and column")
def _(api):
    refused(lambda: run("3DLabsScenePlan", story='{"title": "x",', max_minutes=1, seed=0), "not valid JSON", "line 1")


@case("story-json-not-object", "node input", "Scene Plan story text '42', '[]' or '{}'",
      "ValidationError: must be a JSON object")
def _(api):
    for text in ("42", "[]", "{}"):
        refused(lambda t=text: run("3DLabsScenePlan", story=t, max_minutes=1, seed=0), "JSON object")


@case("prompt-list-holes", "node input", "a prompt list with an empty, a None or a 5,000-character item",
      "ValidationError naming the item; none of the list is submitted")
def _(api):
    refused(lambda: generate(["ok", "   "]), "item 2 of the list", "empty")
    refused(lambda: generate(["ok", None]), "item 2 of the list", "must be text")
    refused(lambda: generate(["ok", "y" * 5000]), "item 2 of the list", "4000")
    refused(lambda: generate([]), "prompt list is empty")


@case("image-options-bad", "node input", "aspect ratio '2:1', model 'flux dev', provider 'midjourney'",
      "ValidationError naming the field and the allowed values")
def _(api):
    refused(lambda: generate(aspect_ratio="2:1"), "aspect_ratio", "16:9")
    refused(lambda: generate(model="flux dev"), "model slug")
    refused(lambda: generate(provider="midjourney"), "replicate, gemini")


@case("ids-with-path-characters", "node input",
      "project_id or job_id with a space, '../session/list', '?x=1' or '#'",
      "ValidationError: not an id (they go into URL paths)")
def _(api):
    refused(lambda: generate(project_id="proj demo"), "not an id")  # (Job Wait splits ids on spaces)
    for bad in ("../session/list", "job_1?x=1", "a#b", "%2e%2e"):
        refused(lambda b=bad: generate(project_id=b), "not an id")
        refused(lambda b=bad: job_wait(b), "not an id")
    refused(lambda: run("3DLabsLoadProject", project_id="../session/list"), "not an id")


@case("job-ids-empty", "node input", "Job Wait with '', ' , ' or only 'dry-run'", "ValidationError: no job id given")
def _(api):
    for text in ("", " ,\n;", "dry-run"):
        refused(lambda t=text: job_wait(t), "No job id given")


@case("job-cap", "node input", "51 prompts in one list (cap 50 per prompt)",
      "JobCapError naming 51 and the cap; nothing submitted")
def _(api):
    raises(E.JobCapError, lambda: generate([f"p{i}" for i in range(51)]), "51 jobs", "50", "THREEDLABS_MAX_JOBS")


@case("select-and-limits", "node input", "Scene Select index past the plan; Recent Jobs limit 0; empty project id",
      "ValidationError naming the range")
def _(api):
    plan = models.ScenePlan([models.Scene(1, "a", "", 2.0)], raw={})
    refused(lambda: run("3DLabsSceneSelect", scene_plan=plan, index=2), "scenes 1 to 1")
    refused(lambda: run("3DLabsRecentJobs", limit=0), "limit")
    refused(lambda: run("3DLabsLoadProject", project_id="  "), "project_id is empty")


@case("token-unsendable", "node input", "a token with a line break, a space or a curly quote in it",
      "ConfigError before any request; the message never quotes the token")
def _(api, monkeypatch=None):
    for bad in ("scripted-bearer\n7c1d9e0a4b", "scripted bearer 7c1d", "scripted-\u201cbearer\u201d-7c1d"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("THREEDLABS_TOKEN", bad)
            clients.reset_clients()
            err = raises(E.ConfigError, lambda: generate(), "cannot be sent in an HTTP header", "nothing was sent")
            assert "7c1d" not in str(err) and "bearer" not in str(err).lower()


# API answers to the job-creating POST (a job may exist: never re-sent)

def submit_refused(api, answer, exc_type, *words, posts=1, seed=0):
    api.on("POST", "/api/images/generate", answer)
    err = raises(exc_type, lambda: generate(seed=seed), *words)
    assert api.count("POST") == posts, "a POST that may have made a job was sent again"
    assert api.count("GET") == 0
    return err


@case("post-html", "API answer", "POST answered 200 with an HTML error page",
      "ResponseFormatError: an HTML page instead of JSON, check the base URL; not re-sent")
def _(api):
    submit_refused(api, raw(b"<html><head><title>Oops</title></head><body>Oops</body></html>",
                            content_type="text/html"), E.ResponseFormatError, "HTML page instead of JSON",
                   "Check the base URL", "/api")


@case("post-truncated-json", "API answer", 'POST answered {"jobId": "job_12 (cut off)',
      "MaybeSubmittedError: not valid JSON, not re-sent, listed by Recent Jobs as 'answer lost'")
def _(api):
    submit_refused(api, raw(b'{"jobId": "job_12'), E.MaybeSubmittedError, "not valid JSON", "not re-sent")
    assert journal_mod.Journal().recent(1)[0]["label"].startswith("answer lost")


@case("post-missing-id", "API answer", "POST answered {} or {\"ok\": true}",
      "MaybeSubmittedError: no readable job id (keys seen), not re-sent")
def _(api):
    submit_refused(api, js({"ok": True}), E.MaybeSubmittedError, "without a readable job id", "keys seen: ok")


@case("post-id-wrong-type", "API answer", 'POST answered {"jobId": ["x"]} or {"jobId": "../session/list"}',
      "MaybeSubmittedError: no readable job id (an id must be safe in a URL path)")
def _(api):
    submit_refused(api, js({"jobId": ["x"]}), E.MaybeSubmittedError, "without a readable job id")
    api.requests.clear()
    # The first answer is journaled as maybe submitted: the same inputs would now be refused unsent.
    submit_refused(api, js({"jobId": "../session/list"}), E.MaybeSubmittedError, "without a readable job id", seed=1)


@case("post-id-number", "API answer", 'POST answered {"jobId": 12345} (a number)',
      "accepted as job '12345'; the image is delivered")
def _(api):
    api.on("POST", "/api/images/generate", js({"jobId": 12345}))
    api.on("GET", "/api/jobs/12345", done(api))
    api.on("GET", "/files/a.png", raw(png(size=SIZE), content_type="image/png"))
    images, _, ids, _image_list = generate()
    assert ids == "12345" and images.shape == (1, 48, 64, 3)


@case("post-empty-200", "API answer", "POST answered 200 with an empty body",
      "MaybeSubmittedError: empty body, not re-sent")
def _(api):
    submit_refused(api, raw(b""), E.MaybeSubmittedError, "empty body", "not re-sent")


@case("post-null", "API answer", "POST answered the JSON null", "MaybeSubmittedError: no readable job id")
def _(api):
    submit_refused(api, raw(b"null"), E.MaybeSubmittedError, "without a readable job id")


@case("post-200-with-error", "API answer", 'POST answered 200 {"error": "Insufficient credits"}',
      "MaybeSubmittedError quoting the server's words; not re-sent")
def _(api):
    submit_refused(api, js({"error": "Insufficient credits"}), E.MaybeSubmittedError,
                   "the server said: Insufficient credits", "not re-sent")


@case("post-400-nested-error", "API answer",
      'POST answered 400 {"error": {"message": "prompt too long", "code": "bad_prompt"}}',
      "InvalidRequestError quoting 'prompt too long' (HTTP 400)")
def _(api):
    submit_refused(api, js({"error": {"message": "prompt too long", "code": "bad_prompt"}}, 400),
                   E.InvalidRequestError, "prompt too long", "HTTP 400")


@case("post-400-huge-html", "API answer", "POST answered 400 with a 200 KiB HTML page titled with the reason",
      "InvalidRequestError quoting the page's title (read from the first 64 KiB only)")
def _(api):
    page = b"<html><head><title>Prompt refused: banned word</title></head><body>" + b"x" * 200_000 + b"</body>"
    submit_refused(api, raw(page, 400, content_type="text/html"), E.InvalidRequestError,
                   "Prompt refused: banned word", "HTTP 400")


@case("post-404-clerk", "API answer", "POST answered 404 with x-clerk-auth-reason: session-token-expired",
      "AuthError quoting Clerk's reason, with the token-command hint")
def _(api):
    submit_refused(api, Answer(404, b"", (("x-clerk-auth-status", "signed-out"),
                                          ("x-clerk-auth-reason", "session-token-expired"))),
                   E.AuthError, "session-token-expired", "THREEDLABS_TOKEN_COMMAND")


@case("post-429-bad-retry-after", "API answer", "POST answered 429 with Retry-After: soon, then a job id",
      "retried (429 means no job was made) with its own backoff; delivered; 2 POSTs, 1 job")
def _(api):
    image_job(api)
    api.on("POST", "/api/images/generate", js({"error": "slow down"}, 429, Retry_After="soon"), js({"jobId": JOB}))
    images, _, ids, _image_list = generate()
    assert ids == JOB and api.count("POST") == 2


# API answers while waiting

@case("get-html", "API answer", "job status answered 200 with an HTML page, every time",
      "JobStatusUnknownError naming the job: may still run, collect with Job Wait")
def _(api):
    image_job(api, raw(b"<html><body>Gateway</body></html>", content_type="text/html"))
    raises(E.JobStatusUnknownError, generate, JOB, "HTML page instead of JSON", "Job Wait")


@case("get-truncated-then-ok", "API answer", "job status answered truncated JSON once, then properly",
      "retried; delivered")
def _(api):
    image_job(api, raw(b'{"status": "compl'), done(api))
    assert generate()[0].shape == (1, 48, 64, 3)


@case("get-missing-fields", "API answer", "job status answered {} (or an object with none of the job fields)",
      "JobStatusUnknownError naming the job and the keys seen")
def _(api):
    image_job(api, js({"createdAt": "2026-01-01"}))
    raises(E.JobStatusUnknownError, generate, JOB, "no status, result or error", "keys seen: createdAt")


@case("get-wrong-types", "API answer", 'job status {"status": 42, "progress": "abc"} forever',
      "read as still queued: polled until the timeout, then JobTimeoutError naming the job")
def _(api):
    image_job(api, js({"status": 42, "progress": "abc"}))
    raises(E.JobTimeoutError, lambda: job_wait(timeout=1), JOB, "did not finish in time")


@case("get-progress-garbage", "API answer", 'job progress "NaN%", -5, 1e999, {"current": 3}; then done',
      "progress ignored or clamped; delivered")
def _(api):
    image_job(api, *(js({"status": "processing", "progress": p}) for p in ("NaN%", -5, "1e999", {"current": 3})),
              done(api))
    assert generate()[0].shape == (1, 48, 64, 3)


@case("get-succeeded-without-result", "API answer", 'job {"status": "completed"} with no result',
      "ResponseFormatError naming the job: no image URL or image data in the result")
def _(api):
    image_job(api, js({"status": "completed"}))
    raises(E.ResponseFormatError, generate, f"job {JOB}", "no image URL or image data")


@case("get-failed-without-reason", "API answer", 'job {"status": "failed"} with no error',
      "JobFailedError naming the job: no reason given by the server")
def _(api):
    image_job(api, js({"status": "failed"}))
    raises(E.JobFailedError, generate, JOB, "no reason given by the server")


@case("get-200-with-error", "API answer", 'job status answered 200 {"error": "model crashed"} (no status)',
      "JobFailedError naming the job and quoting 'model crashed'")
def _(api):
    image_job(api, js({"error": "model crashed"}))
    raises(E.JobFailedError, generate, JOB, "model crashed")


@case("get-unknown-status-with-result", "API answer", 'job {"status": "all-good", "result": {"imageUrl": ...}}',
      "an unknown word with a result and no error is success; delivered")
def _(api):
    image_job(api, js({"status": "all-good", "result": {"imageUrl": file_url(api)}}))
    assert generate()[0].shape == (1, 48, 64, 3)


@case("get-result-not-http", "API answer", "result URL file:///etc/passwd or ftp://...",
      "not an image reference: nothing fetched; ResponseFormatError naming the job")
def _(api):
    for url in ("file:///etc/passwd", "ftp://cdn.example/x.png"):
        image_job(api, done(api, {"imageUrl": url}))
        raises(E.ResponseFormatError, generate, f"the result of job {JOB}", "no image URL or image data")
        assert api.count("GET", "/files") == 0


@case("job-never-existed", "API answer", "Job Wait for an id 3DLabs answers 404 for",
      "polled through the short grace for new jobs, then JobFailedError: 3DLabs does not know this job id")
def _(api):
    api.on("GET", "/api/jobs/job_nope", js({"error": "Job not found"}, 404))
    raises(E.JobFailedError, lambda: job_wait("job_nope"), "job_nope", "does not know this job id")


@case("sessions-unreadable", "API answer", 'Projects: {"sessions": [1, "x", null]} or an HTML page',
      "ResponseFormatError (no session has an id / HTML instead of JSON)")
def _(api):
    api.on("GET", "/api/session/list", js({"sessions": [1, "x", None]}))
    raises(E.ResponseFormatError, lambda: run("3DLabsProjects", refresh=0), "no session in the answer has an id")
    api.on("GET", "/api/session/list", raw(b"<html>down</html>", content_type="text/html"))
    raises(E.ResponseFormatError, lambda: run("3DLabsProjects", refresh=0), "HTML page instead of JSON")


@case("session-200-with-error", "API answer", 'Load Project answered 200 {"error": "Session not found"}',
      "ResponseFormatError quoting the server, instead of an empty project")
def _(api):
    api.on("GET", "/api/session/p1", js({"error": "Session not found"}))
    raises(E.ResponseFormatError, lambda: run("3DLabsLoadProject", project_id="p1"), "Session not found")


@case("redirect-and-sign-in-pages", "API answer", "302 to /sign-in; 401 with a Clerk sign-in HTML page",
      "AuthError naming the sign-in page; the redirect is not followed")
def _(api):
    api.on("GET", "/api/session/list", Answer(302, b"", (("Location", "/sign-in?redirect_url=x"),)))
    raises(E.AuthError, lambda: run("3DLabsProjects", refresh=0), "sign-in")
    api.on("GET", "/api/session/list", raw(b"<html><title>Sign in</title></html>", 401, "text/html"))
    raises(E.AuthError, lambda: run("3DLabsProjects", refresh=0), "did not accept the token")
    assert api.count("GET", "/sign-in") == 0


# image bytes

def image_refused(api, file: Answer, exc_type, *words):
    image_job(api, file=file)
    err = raises(exc_type, generate, *words)
    assert JOB in str(err), "the message must name the paid job, to collect it again"
    return err


@case("image-truncated", "image bytes", "the first half of a PNG", "ImageDecodeError naming the job")
def _(api):
    data = png((10, 200, 10), (256, 256))
    image_refused(api, raw(sandbox_images.truncated(data), content_type="image/png"), E.ImageDecodeError,
                  "could not be decoded")


@case("image-empty", "image bytes", "a 200 with zero bytes", "ImageDecodeError: empty body, naming the job")
def _(api):
    image_refused(api, raw(b"", content_type="image/png"), E.ImageDecodeError, "empty body")


@case("image-is-html", "image bytes", "an HTML error page served with status 200",
      "ImageDecodeError: not an image (looks like HTML), naming the job")
def _(api):
    image_refused(api, raw(b"<!DOCTYPE html><html><body>AccessDenied</body></html>", content_type="text/html"),
                  E.ImageDecodeError, "HTML")


@case("image-bomb", "image bytes", "a valid PNG claiming 20000 x 20000 pixels (50 kB on the wire)",
      "ImageTooLargeError before decoding, naming the job")
def _(api):
    image_refused(api, raw(sandbox_images.bomb_png(), content_type="image/png"), E.ImageTooLargeError, "20000x20000")


@case("image-length-lies", "image bytes", "Content-Length: 100 MB (over the 64 MiB cap)",
      "ImageTooLargeError from the header, nothing downloaded")
def _(api):
    image_refused(api, Answer(200, b"\x89PNG", (("Content-Type", "image/png"),), declared_length=100_000_000),
                  E.ImageTooLargeError, "limit is 64 MiB")


@case("image-expired-url", "image bytes", "the CDN answers 404 (Replicate deletes outputs after an hour)",
      "ImageDownloadError naming the job: result URLs may expire")
def _(api):
    image_refused(api, js({"error": "gone"}, 404), E.ImageDownloadError, "may expire after an hour")


@case("image-cdn-503-then-ok", "image bytes", "the CDN answers 503 once, then the image",
      "retried; delivered")
def _(api):
    image_job(api)
    api.on("GET", "/files/a.png", raw(b"busy", 503), raw(png(size=SIZE), content_type="image/png"))
    assert generate()[0].shape == (1, 48, 64, 3) and api.count("GET", "/files") == 2


@case("image-base64-broken", "image bytes", "b64_json that is not base64; base64 of plain text",
      "not base64: ResponseFormatError (no image data) naming the job; text: ImageDecodeError naming the job")
def _(api):
    image_job(api, done(api, {"b64_json": "iVBORw0KGgo" + "A" * 40 + "!!!"}))
    raises(E.ResponseFormatError, generate, f"the result of job {JOB}", "no image URL or image data")
    image_job(api, done(api, {"b64_json": "aGVsbG8gd29ybGQgdGhpcyBpcyB0ZXh0"}))  # "hello world this is text"
    raises(E.ImageDecodeError, generate, f"job {JOB}", "not an image")


@case("image-odd-formats", "image bytes", "RGBA PNG, 16-bit grey PNG, CMYK JPEG, palette PNG, WebP",
      "decoded to RGB in 0..1 (alpha becomes the mask); a batch of mixed sizes is resized to the first")
def _(api):
    # Only the formats 3DLabs sends (a GIF is refused: tests/test_security_memory.py), in their odd modes.
    files = [png((255, 0, 0, 128), SIZE, "RGBA"), png(40000, SIZE, "I;16"),
             png((255, 0, 255, 0), (32, 32), "CMYK", fmt="JPEG"), png(3, SIZE, "P"),
             png((0, 0, 255), (80, 60), "RGB", fmt="WEBP")]
    api.on("POST", "/api/images/generate", job_named_after_prompt)
    for i, data in enumerate(files):
        api.on("GET", f"/api/jobs/job_p{i}", done(api, {"imageUrl": file_url(api, f"{i}.png")}))
        api.on("GET", f"/files/{i}.png", raw(data, content_type="image/png"))
    images, masks, job_ids, _image_list = generate([f"p{i}" for i in range(len(files))])
    assert images.shape == (5, 48, 64, 3) and masks.shape == (5, 48, 64)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert job_ids.split("\n") == [f"job_p{i}" for i in range(len(files))]
    assert float(masks[0].mean()) == pytest.approx(1 - 128 / 255, abs=0.01)  # alpha 128 -> mask
    assert float(masks[1:].abs().max()) == 0.0  # no alpha: an empty mask
    assert torch.allclose(images[2, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=0.02)  # CMYK green, resized


JOURNAL_DAMAGE = {  # how the database file is damaged -> how many of its 200 paid jobs can still be read
    "pages in the middle overwritten": (lambda data: data[:8192] + b"\xa5" * (len(data) - 16384) + data[-8192:], 1),
    "header overwritten": (lambda data: b"\x00" * 100 + data[100:], 200),
    "cut short": (lambda data: data[: len(data) // 2], 1),
    "another file in its place": (lambda data: png(), 0),
}


@case("journal-garbage", "local file", "a journal database damaged: pages overwritten in the middle, its header "
      "overwritten, cut short, or another file in its place",
      "Recent Jobs says it was damaged and replaced, how many jobs were read back and where the damaged file is "
      "kept (untouched); it lists those jobs, and a re-run reuses them instead of paying again")
def _(api):
    for how, (damage, at_least) in JOURNAL_DAMAGE.items():
        journal = journal_mod.Journal()
        for name in list(journal.path.parent.glob("jobs.sqlite3*")):
            name.unlink()
        fields = dict(base_url="http://x/api", workspace=None)
        for i in range(200):
            journal.record_submitted(f"job_paid_{i:03d}", "image", label=f"paid {i}", request_key=f"key{i}", **fields)
            journal.record_state(f"job_paid_{i:03d}", "succeeded")
        journal.close()
        with sqlite3.connect(journal.path) as conn:  # every page in the main file, none left in its -wal
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        damaged = damage(journal.path.read_bytes())
        journal.path.write_bytes(damaged)
        text, ids = run("3DLabsRecentJobs", limit=500)
        read_back = int(re.search(r"journal was damaged .* replaced on .*: (\d+) job\(s\) could be read", text)[1])
        assert read_back >= at_least and "collect it by id with Job Wait" in text, (how, text[:400])
        kept = journal.path.with_name("jobs.sqlite3.corrupt")
        assert f"kept, untouched, as {kept}" in text and kept.read_bytes() == damaged, how
        listed = ids.split("\n") if ids else []
        assert len(listed) == read_back and set(listed) <= {f"job_paid_{i:03d}" for i in range(200)}, how
        for job_id in listed:  # what was read back is reused, not paid for again
            assert journal_mod.Journal().find_paid(f"key{int(job_id[-3:])}", **fields)["id"] == job_id
        journal_mod.Journal().record_submitted("job_after", "image")  # the new journal works
        assert run("3DLabsRecentJobs", limit=1)[1] == "job_after"


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id, api):
    CASES[case_id][3](api)


def test_at_least_thirty_cases_across_the_three_kinds():
    kinds = {}
    for where, *_ in CASES.values():
        kinds[where] = kinds.get(where, 0) + 1
    assert len(CASES) >= 30 and {"node input", "API answer", "image bytes"} <= set(kinds), kinds
    report("bad_input", cases=len(CASES), **{k.replace(" ", "_"): n for k, n in kinds.items()})


def test_docs_table_lists_every_case():
    doc = (Path(PACK_DIR) / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [cid for cid in CASES if not re.search(rf"\|\s*`{re.escape(cid)}`\s*\|", doc)]
    assert not missing, f"docs/reliability.md has no table row for: {missing}"


def job_named_after_prompt(body: dict) -> Answer:
    return js({"jobId": "job_" + body["prompt"]})


def test_images_are_returned_in_prompt_order_even_when_jobs_finish_out_of_order(api):
    """The first prompt's job ends last, the third's first: the batch is still in prompt order."""
    names = ["red", "green", "blue"]
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    api.on("POST", "/api/images/generate", job_named_after_prompt)
    for i, name in enumerate(names):
        running = [js({"status": "processing", "progress": 50})] * (3 * (len(names) - i))
        api.on("GET", f"/api/jobs/job_{name}", *running, done(api, {"imageUrl": file_url(api, f"{name}.png")}))
        api.on("GET", f"/files/{name}.png", raw(png(colors[i], SIZE), content_type="image/png"))
    images, _, job_ids, _image_list = generate(names)
    assert job_ids.split("\n") == [f"job_{n}" for n in names]
    for slot, color in enumerate(colors):
        assert torch.allclose(images[slot, 0, 0], torch.tensor(color, dtype=torch.float32) / 255, atol=1 / 255)
