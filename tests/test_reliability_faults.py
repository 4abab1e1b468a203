"""The fault matrix: every sandbox fault flag, alone and in combinations, against every node that
talks to 3DLabs, asserting what the user sees.

Nodes: Story, Scene Plan, Image Generate (a list of two prompts), Job Wait, Load Project and
Projects. Scene Select and Recent Jobs make no HTTP call at all (a test below proves it with the
server down), so no fault can reach them.

For each (flag, node) the expected outcome is either success (with the right output, and exactly
the jobs it needs: nothing paid twice) or one typed error whose message says what happened and
names the job id when a job exists (so that it can be collected with Job Wait). Delays are tuned
down (retry backoff, poll intervals, timeouts) so that the matrix runs in seconds; the retry
counts and the rules are the pack's own.

Set THREEDLABS_RELIABILITY_REPORT=path.jsonl to have the figures appended to that file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

import pytest
import torch

from conftest import load_pack, pack_module
from node_runner import image_args, run
from reliability_report import report

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
models = pack_module("nodes.api.models")
jobs_engine = pack_module("nodes.api.jobs")
story_mod = pack_module("nodes.story")
scenes_mod = pack_module("nodes.scenes")
generate_mod = pack_module("nodes.generate")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

NODES = ("story", "plan", "images", "wait", "load", "projects")
JOBS_MADE = {"story": 1, "plan": 1, "images": 2}  # jobs each node needs when all goes well
STORY_JSON = json.dumps({"title": "Clocks", "logline": "A fox collects clocks.",
                         "beats": [{"narration": "A fox finds a clock in the snow."}]})
JOB_ID = re.compile(r"job_[0-9a-f]{16}")

E = errors


@dataclass(frozen=True)
class Expect:
    error: type | tuple[type, ...] | None = None  # None: the node succeeds
    says: tuple[str, ...] = ()  # every one of these is in the message the user sees
    names_job: bool = False  # the message names a job the sandbox really has
    inner: type | tuple[type, ...] | None = None  # for a BatchError: the type of every failure
    jobs: int | None = None  # jobs the sandbox made (None: the node's normal count when it succeeds)
    not_error: type | None = None  # the error must not be this subclass


OK = Expect()


def ok_everywhere() -> dict:
    return dict.fromkeys(NODES, OK)


def unknown_status() -> Expect:
    return Expect(E.JobStatusUnknownError, ("Could not get the 3DLabs job's status", "polling kept failing",
                                            "Job Wait"), names_job=True)


def batch_of(inner, *says) -> Expect:
    return Expect(E.BatchError, ("2 of 2 3DLabs jobs failed", "item 1", "item 2", *says), names_job=True,
                  inner=inner)


def submit_failed(error, *says, jobs=0) -> dict:
    """Story, Scene Plan and the image list refused at submission; the GET-only nodes unaffected."""
    return {"story": Expect(error, says, jobs=jobs), "plan": Expect(error, says, jobs=jobs),
            "images": Expect(error, ("Submitting item 1 of 2 to 3DLabs failed", *says), jobs=2 * jobs),
            "wait": OK, "load": OK, "projects": OK}


def polls_fail(load_projects: Expect) -> dict:
    """Jobs are made, then nothing can read them: the user is told the status is unknown, with ids."""
    return {"story": unknown_status(), "plan": unknown_status(),
            "images": batch_of(E.JobStatusUnknownError, "Could not get the 3DLabs job's status"),
            "wait": unknown_status(), "load": load_projects, "projects": load_projects}


def everywhere(expect: Expect, wait: Expect | None = None) -> dict:
    cases = {n: Expect(expect.error, expect.says, jobs=0) for n in NODES}
    if wait is not None:
        cases["wait"] = wait
    return cases


SERVER_OR_RATE = Expect((E.ServerError, E.RateLimitedError), ("3DLabs",))
REDIRECT_SIGN_IN = "https://accounts.example.com/sign-in?redirect_url=x"

# flag case -> (faults, {node: Expect}, overrides of the tuned knobs)
ALONE: dict[str, tuple[dict, dict, dict]] = {
    "latency_ms": ({"latency_ms": 40}, ok_everywhere(), {}),
    "error_rate=0.3": ({"error_rate": 0.3, "fault_seed": 3}, ok_everywhere(), {}),
    "error_rate=1": ({"error_rate": 1.0}, polls_fail(SERVER_OR_RATE), {}),
    # Seed 32: two 429s, then successes. A 429 proves no job was made, so the POST is sent again.
    "post_error_rate=0.4": ({"post_error_rate": 0.4, "fault_seed": 32}, ok_everywhere(), {}),
    # Seed 3: a 429, then a 503. A 503 proves nothing: that POST is not sent again, and the user is told
    # the job may exist (the other item of the list is retried after its 429 and made).
    "post_error_rate=0.4,a 503": ({"post_error_rate": 0.4, "fault_seed": 3}, {
        **submit_failed(E.MaybeSubmittedServerError, "may exist", "not re-sent", "Recent Jobs"),
        "images": Expect(E.MaybeSubmittedServerError, ("Submitting item", "may exist", "not re-sent"), jobs=1)}, {}),
    "post_error_rate=1": ({"post_error_rate": 1.0},
                          submit_failed((E.RateLimitedError, E.ServerError), "3DLabs"), {}),
    "reset_rate=0.3,gets_only": ({"reset_rate": 0.3, "reset_gets_only": True, "fault_seed": 3}, ok_everywhere(), {}),
    "reset_rate=1": ({"reset_rate": 1.0}, {
        **submit_failed(E.MaybeSubmittedError, "the job may exist", "not re-sent", "Recent Jobs"),
        "wait": unknown_status(),
        "load": Expect(E.NetworkError, ("Could not reach 3DLabs", "ConnectionError"), jobs=0,
                       not_error=E.MaybeSubmittedError),
        "projects": Expect(E.NetworkError, ("Could not reach 3DLabs",), jobs=0, not_error=E.MaybeSubmittedError),
    }, {}),
    "fail_jobs": ({"fail_jobs": True}, {
        "story": Expect(E.JobFailedError, ("The 3DLabs job failed", "generation failed (injected)"), names_job=True),
        "plan": Expect(E.JobFailedError, ("The 3DLabs job failed", "generation failed (injected)"), names_job=True),
        "images": batch_of(E.JobFailedError, "generation failed (injected)", "reused without paying again"),
        "wait": Expect(E.JobFailedError, ("The 3DLabs job failed", "generation failed (injected)"), names_job=True),
        "load": OK, "projects": OK}, {}),
    "hang_jobs": ({"hang_jobs": True}, {
        "story": Expect(E.JobTimeoutError, ("did not finish in time", "Job Wait"), names_job=True),
        "plan": Expect(E.JobTimeoutError, ("did not finish in time", "Job Wait"), names_job=True),
        "images": batch_of(E.JobTimeoutError, "did not finish in time"),
        "wait": Expect(E.JobTimeoutError, ("did not finish in time", "still running"), names_job=True),
        "load": OK, "projects": OK}, {"timeout": 0.4}),
    "drop_after_create": ({"drop_after_create": True},
                          submit_failed(E.MaybeSubmittedError, "the job may exist", "not re-sent", jobs=1), {}),
    # The job is made, then its answer cannot be read: never re-sent, journaled as maybe submitted.
    "post_answer=refused_status_line": ({"post_answer": "refused_status_line"},
                                        submit_failed(E.MaybeSubmittedError, "the job may exist", "not re-sent",
                                                      jobs=1), {}),
    "post_answer=deep_nesting": ({"post_answer": "deep_nesting"},
                                 submit_failed(E.MaybeSubmittedUnreadableError, "nested too deeply", "not re-sent",
                                               jobs=1), {}),
    "post_answer=bogus_charset": ({"post_answer": "bogus_charset"},
                                  submit_failed(E.MaybeSubmittedUnreadableError, "unknown charset", jobs=1), {}),
    "post_answer=many_objects": ({"post_answer": "many_objects"},
                                 submit_failed(E.MaybeSubmittedUnreadableError, "JSON objects and arrays", jobs=1), {}),
    "post_answer_delay_ms": ({"post_answer_delay_ms": 50}, ok_everywhere(), {}),
    "poll_answer=deep_nesting": ({"poll_answer": "deep_nesting"}, polls_fail(OK), {}),
    "malformed_json=0.3": ({"malformed_json": 0.3, "fault_seed": 5}, ok_everywhere(), {}),
    "malformed_json=1": ({"malformed_json": 1.0}, {
        **submit_failed(E.MaybeSubmittedError, "not valid JSON", "not re-sent", jobs=1),
        "wait": unknown_status(),
        "load": Expect(E.ResponseFormatError, ("cannot read", "invalid JSON"), jobs=0),
        "projects": Expect(E.ResponseFormatError, ("cannot read", "invalid JSON"), jobs=0)}, {}),
    "html_instead_of_json": ({"html_instead_of_json": 1.0},
                             everywhere(Expect(E.AuthError, ("did not accept the token", "sign-in page"))), {}),
    "corrupt_images": ({"corrupt_images": True}, {
        **ok_everywhere(),
        "images": Expect(E.ImageDecodeError, ("could not be decoded",), names_job=True),
        "wait": Expect(E.ImageDecodeError, ("could not be decoded",), names_job=True),
        "load": Expect(E.ImageDecodeError, ("could not be decoded", "project proj_demo"))}, {}),
    "huge_images": ({"huge_images": True}, {
        **ok_everywhere(),
        "images": Expect(E.ImageTooLargeError, ("larger than the allowed limit", "20000x20000"), names_job=True),
        "wait": Expect(E.ImageTooLargeError, ("larger than the allowed limit", "20000x20000"), names_job=True),
        "load": Expect(E.ImageTooLargeError, ("20000x20000", "project proj_demo"))}, {}),
    "empty_200=0.3": ({"empty_200": 0.3, "fault_seed": 3}, ok_everywhere(), {}),
    "empty_200=1": ({"empty_200": 1.0}, polls_fail(OK), {}),
    "job_404_seconds=0.25": ({"job_404_seconds": 0.25}, ok_everywhere(), {}),
    "job_404_seconds=forever": ({"job_404_seconds": 3600}, {
        "story": Expect(E.JobFailedError, ("does not know this job id",), names_job=True),
        "plan": Expect(E.JobFailedError, ("does not know this job id",), names_job=True),
        "images": batch_of(E.JobFailedError, "does not know this job id"),
        "wait": Expect(E.JobFailedError, ("does not know this job id",), names_job=True),
        "load": OK, "projects": OK}, {"grace": 0.5}),
    "envelope=job": ({"envelope": "job"}, ok_everywhere(), {}),
    "envelope=data": ({"envelope": "data"}, ok_everywhere(), {}),
    "envelope=rotate": ({"envelope": "rotate"}, ok_everywhere(), {}),
    "image_shape=nested": ({"image_shape": "nested"}, ok_everywhere(), {}),
    "image_host=api": ({"image_host": "api"}, ok_everywhere(), {}),
    # A host that trickles each image out (a read every 0.1 s): slow, but every node still gets its pictures.
    "image_drip_bps": ({"image_drip_bps": 4_000_000}, ok_everywhere(), {}),
    "session_drip_bps": ({"session_drip_bps": 4_000_000}, ok_everywhere(), {}),
    "out_of_credits": ({"out_of_credits": True},
                       submit_failed(E.OutOfCreditsError, "out of credits", "HTTP 402"), {}),
    "server_down": ({"server_down": True},
                    everywhere(Expect(E.ServerError, ("server error", "HTTP 500")), wait=unknown_status()), {}),
    "redirect_to=file host": ({"redirect_to": "FILE_HOST"},
                              everywhere(Expect(E.ServerError, ("unexpected redirect",)), wait=unknown_status()),
                              {}),
    "redirect_to=sign-in": ({"redirect_to": REDIRECT_SIGN_IN},
                            everywhere(Expect(E.AuthError, ("sign-in page",))), {}),
}

INJECTED: Counter = Counter()  # faults the sandbox injected, summed over the cases of one module
RESULTS: Counter = Counter()  # cases that ended in success / in the expected typed error


@pytest.fixture(scope="module", autouse=True)
def matrix_tally(request):
    INJECTED.clear()
    RESULTS.clear()
    yield
    if RESULTS:
        report(f"fault_matrix {request.module.__name__}", cases=sum(RESULTS.values()), succeeded=RESULTS["ok"],
               typed_errors=RESULTS["error"], faults_injected={k: v for k, v in sorted(INJECTED.items()) if v})


@pytest.fixture(scope="module", autouse=True)
def keep_rendered_pngs():
    """The sandbox forgets its rendered PNGs on every reset; Load Project would redraw its four
    seeded images in every case. Keeping them changes no answer (faults act on the bytes served)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pack_module("sandbox.images").PngCache, "clear", lambda self: None)
        yield


@pytest.fixture(autouse=True)
def fast(sandbox, monkeypatch, fast_retries, fast_polls):
    """Same rules, shorter waits: retry backoff, poll intervals and job duration tuned down."""
    monkeypatch.setattr(jobs_engine, "NOT_FOUND_GRACE_SECONDS", 3.0)
    sandbox.job_seconds = 0.05
    spend.reset_tallies()
    clients.reset_clients()
    comfy.set_local_interrupt(False)
    yield
    clients.reset_clients()


def make_job_for_wait(sandbox) -> str:
    """Job Wait collects a job made earlier: made in the sandbox directly (under the current flags, so
    that fail/hang/404 apply to it), outside the request counters the node is judged by."""
    params = {"prompt": "a kite over the dunes", "provider": "replicate", "model": "flux-schnell",
              "aspectRatio": "16:9"}
    return sandbox.create_job("image", params)


def run_node(name: str, sandbox, timeout: float):
    if name == "story":
        story, text, job_id = run("3DLabsStory", topic="A fox who collects clocks", max_minutes=1,
                                  provider="gemini", seed=0, unique_id="1")
        assert isinstance(story, models.Story) and "fox" in text.lower() and job_id
    elif name == "plan":
        plan, prompts, count, text, job_id, *_per_scene = run("3DLabsScenePlan", story=STORY_JSON, max_minutes=1,
                                                              seed=0, unique_id="2")
        assert count == len(prompts) == len(plan.scenes) >= 1 and all(prompts) and job_id
    elif name == "images":
        images, masks, job_ids, _image_list = run("3DLabsImageGenerate", **image_args(["a red kite", "a blue kite"]))
        assert images.shape == (2, 768, 1344, 3) and masks.shape == (2, 768, 1344)
        assert not torch.equal(images[0], images[1]) and len(job_ids.split("\n")) == 2
    elif name == "wait":
        job_id = make_job_for_wait(sandbox)
        result_json, images, text = run("3DLabsJobWait", job_id=[job_id], timeout_seconds=[timeout],
                                        unique_id=["4"])
        assert json.loads(result_json)["id"] == job_id and images.shape == (1, 768, 1344, 3)
    elif name == "load":
        story, plan, images, project_json = run("3DLabsLoadProject", project_id="proj_demo")
        assert story.text and len(plan.scenes) == 4 and images.shape[0] == 4
    elif name == "projects":
        (text,) = run("3DLabsProjects", refresh=0)
        assert "proj_demo" in text
    else:
        raise AssertionError(name)


def check(case: str, node: str, faults: dict, expect: Expect, knobs: dict, sandbox, monkeypatch) -> None:
    timeout = knobs.get("timeout", 60.0)
    for mod, name in ((story_mod, "STORY_TIMEOUT"), (scenes_mod, "PLAN_TIMEOUT"), (generate_mod, "IMAGE_TIMEOUT")):
        monkeypatch.setattr(mod, name, timeout)
    if "grace" in knobs:
        monkeypatch.setattr(jobs_engine, "NOT_FOUND_GRACE_SECONDS", knobs["grace"])
    flags = {k: (f"{sandbox.file_url}/files/elsewhere.png" if v == "FILE_HOST" else v) for k, v in faults.items()}
    sandbox.set_faults(retry_after=0, **flags)

    raised = None
    try:
        run_node(node, sandbox, timeout)
    except errors.ThreeDLabsError as err:
        raised = err
    stats = sandbox.stats()
    made = stats["jobs_created_total"] - (1 if node == "wait" else 0)
    INJECTED.update(stats["faults_injected"])

    if expect.error is None:
        assert raised is None, f"{case} / {node}: expected success, got {type(raised).__name__}: {raised}"
        wanted = JOBS_MADE.get(node, 0) if expect.jobs is None else expect.jobs
        assert made == wanted, f"{case} / {node}: {made} jobs made, {wanted} needed (paid twice?)"
    else:
        assert raised is not None, f"{case} / {node}: expected {expect.error}, but the node succeeded"
        assert isinstance(raised, expect.error), f"{case} / {node}: {type(raised).__name__}: {raised}"
        if expect.not_error is not None:
            assert not isinstance(raised, expect.not_error), f"{case} / {node}: {type(raised).__name__}"
        message = str(raised)
        for words in expect.says:
            assert words in message, f"{case} / {node}: {words!r} not in {message!r}"
        if expect.names_job:
            named = set(JOB_ID.findall(message))
            assert named, f"{case} / {node}: no job id in {message!r}"
            assert all(sandbox.job(jid) is not None for jid in named)
        if expect.inner is not None:
            assert all(isinstance(f, expect.inner) for f in raised.failures), raised.failures
            assert all(f.job_id and f.job_id in message for f in raised.failures)
        if expect.jobs is not None:
            assert made == expect.jobs, f"{case} / {node}: {made} jobs made, expected {expect.jobs}"
        elif node in JOBS_MADE:
            assert made <= JOBS_MADE[node], f"{case} / {node}: {made} jobs made (paid twice?)"
    if "redirect_to" in faults:
        assert stats["file_requests"] == 0, "a redirect was followed"
    # The token goes with a download only when the API host itself serves the images.
    api_hosted = faults.get("image_host") == "api" and node in ("images", "wait")
    assert stats["file_requests_with_authorization"] == (stats["file_requests"] if api_hosted else 0)
    RESULTS["ok" if raised is None else "error"] += 1


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("case", list(ALONE))
def test_each_flag_alone(case, node, sandbox, monkeypatch):
    faults, expects, knobs = ALONE[case]
    check(case, node, faults, expects[node], knobs, sandbox, monkeypatch)


def test_every_sandbox_flag_is_in_the_matrix():
    flags = set(pack_module("sandbox.faults").FLAG_NAMES) - {"fault_seed", "retry_after"}  # knobs, not faults
    covered = {name for faults, _, _ in ALONE.values() for name in faults} - {"fault_seed"}
    assert flags <= covered, f"flags missing from the matrix: {sorted(flags - covered)}"
    assert all(set(expects) == set(NODES) for _, expects, _ in ALONE.values())
