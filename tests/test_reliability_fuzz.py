"""Fuzzing the two places tests/test_readers_fuzz.py does not reach: HTTP error mapping and retries
(nodes/api/http.py) and waiting for many jobs (as the nodes do: NodeRun.collect, jobs.wait_job per job).

- Random statuses, bodies and headers (Content-Type, Retry-After, Clerk headers, Location), and
  random transport exceptions: only the pack's typed errors come out; a GET is tried at most
  max_attempts times; a POST is sent again only after an answer that proves no job was made
  (429, 503) or a failure that proves the request never left (refused, connect timeout, TLS).
- Random job histories (statuses, progress, typed errors, 404s, fatal auth errors): the wait ends
  within its deadline with one outcome per job in input order (the results, or the failures a
  BatchError names), each a succeeded Job or a JobError carrying that job's id and index,
  consistent with what the job's history allowed.

Derandomized so CI runs the same examples every time.
"""

from __future__ import annotations

import json
import ssl
import time
from collections import deque
from http.client import BadStatusLine

import pytest
import requests
from fake_client import ScriptClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests import exceptions as rexc
from requests.structures import CaseInsensitiveDict
from urllib3 import exceptions as u3exc
from urllib3.exceptions import MaxRetryError

from conftest import pack_module, poll_fast
from node_runner import collect_jobs

errors = pack_module("nodes.api.errors")
http_errors = pack_module("nodes.api.http_errors")
http = pack_module("nodes.api.http")
jobs = pack_module("nodes.api.jobs")
auth = pack_module("nodes.api.auth")
config = pack_module("nodes.api.config")
models = pack_module("nodes.api.models")
Job = models.Job

FUZZ = settings(max_examples=150, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
URL = "https://api.example.test/api/jobs/job_1"

# --- HTTP answers -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
error_bodies = st.fixed_dictionaries({}, optional={
    "error": st.one_of(st.text(max_size=40), st.fixed_dictionaries({"message": st.text(max_size=40)}), json_values),
    "message": st.text(max_size=40), "detail": json_values, "jobId": st.text(max_size=20)})
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    error_bodies.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=60).map(lambda t: f"<html><head><title>{t}</title></head><body>{t}</body></html>".encode()),
    st.sampled_from([b"", b"   ", b"null", b"{", b'{"jobId": "job_', b"<!DOCTYPE html><title>Sign in</title>"]),
)
header_values = st.one_of(st.text(max_size=40), st.sampled_from(["0", "1", "-3", "1e9", "soon",
                                                                 "Wed, 21 Oct 2015 07:28:00 GMT", "nan"]))
headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/html; charset=utf-8", "text/plain", "image/png",
                                     "application/json; charset=latin-1", ""]),
    "Retry-After": header_values,
    "x-clerk-auth-status": st.sampled_from(["signed-out", "handshake", ""]),
    "x-clerk-auth-reason": st.text(max_size=30),
    "Location": st.one_of(st.text(max_size=40), st.sampled_from(["/sign-in", "https://cdn.example/x.png",
                                                                "//evil.example/x", "javascript:alert(1)"])),
}).map(lambda h: {k: v for k, v in h.items() if "\n" not in v and "\r" not in v})
statuses = st.one_of(st.sampled_from([200, 201, 204, 301, 302, 307, 400, 401, 402, 403, 404, 409, 422, 429, 500,
                                      502, 503, 504]), st.integers(min_value=100, max_value=599))


class FuzzResponse(requests.Response):
    def __init__(self, status: int, body: bytes, hdrs: dict, broken: bool = False) -> None:
        super().__init__()
        self.status_code = status
        self._content = body
        self._content_consumed = True
        self.headers = CaseInsensitiveDict(hdrs)
        self.encoding = requests.utils.get_encoding_from_headers(self.headers)  # as requests' adapter sets it
        self.url = URL
        self._broken = broken

    def iter_content(self, chunk_size=1, decode_unicode=False):
        # The body broke off while being read (a 2xx only: an error's status says enough).
        if self._broken and 200 <= self.status_code < 300:
            raise rexc.ChunkedEncodingError("Connection broken: IncompleteRead")
        return super().iter_content(chunk_size, decode_unicode)


def transport(attempts: int = 3):
    settings_ = config.Settings(base_url="https://api.example.test/api")
    tokens = auth.TokenProvider(auth.TokenSource("token", "fuzz-token-0123456789abcdef", "test"))
    return http.HttpTransport(settings_, tokens, retry=http.RetryPolicy(max_attempts=attempts,
                                                                        max_total_seconds=5.0, base_delay=0.0,
                                                                        max_delay=0.0))


@FUZZ
@given(status=statuses, body=bodies, hdrs=headers, creates_job=st.booleans(), broken=st.booleans())
def test_one_answer_maps_to_a_value_or_a_typed_error(status, body, hdrs, creates_job, broken):
    t = transport()
    method = "POST" if creates_job else "GET"
    try:
        t._read(FuzzResponse(status, body, hdrs, broken), method, URL, None, creates_job)
    except http.Retryable as r:
        assert isinstance(r.error, errors.ThreeDLabsError)
        assert not creates_job or status in http.POST_SAFE_STATUSES, "a job-creating POST marked retryable"
    except errors.ThreeDLabsError as err:
        assert str(err) and "fuzz-token" not in str(err)
        if creates_job and 200 <= status < 300 and not isinstance(err, (errors.AuthError,
                                                                       errors.ResponseFormatError)):
            assert isinstance(err, errors.MaybeSubmittedError), type(err)
    if status >= 300:
        err = http_errors.error_for_response(FuzzResponse(status, body, hdrs), body.decode("utf-8", "replace"))
        assert isinstance(err, errors.APIError) and err.status == status


# As requests raises them: urllib3's exception inside (MaxRetryError's reason). Only the types count: a
# plain message that merely reads "Connection refused" (a made-up status line) says nothing was refused.
PRE_SEND = (rexc.ConnectTimeout("connect timed out"),
            rexc.SSLError(MaxRetryError(None, "/api", u3exc.SSLError(ssl.SSLCertVerificationError(1, "verify")))),
            rexc.ConnectionError(MaxRetryError(None, "/api", u3exc.NewConnectionError(None, "Connection refused"))),
            rexc.ConnectionError(MaxRetryError(None, "/api", u3exc.NameResolutionError("api.test", None, OSError()))))
AFTER_SEND = (rexc.ReadTimeout("read timed out"), rexc.ConnectionError("Connection reset by peer"),
              rexc.ChunkedEncodingError("IncompleteRead"), rexc.ContentDecodingError("bad gzip"),
              rexc.ConnectionError("RemoteDisconnected('Remote end closed connection without response')"),
              rexc.ConnectionError("HTTPConnectionPool: Max retries exceeded (Caused by NewConnectionError: "
                                   "Connection refused)"),
              rexc.ConnectionError(u3exc.ProtocolError("Connection aborted.",
                                                       BadStatusLine("HTTP/1.1 2OO Connection refused"))))
outcomes = st.one_of(
    st.tuples(statuses, bodies, headers, st.booleans()).map(lambda a: FuzzResponse(*a)),
    st.sampled_from(PRE_SEND + AFTER_SEND),
)


class ScriptedSession(requests.Session):
    def __init__(self, script) -> None:
        super().__init__()
        self.script = deque(script)
        self.sent = []

    def request(self, method, url, **kw):
        outcome = self.script.popleft() if len(self.script) > 1 else self.script[0]
        self.sent.append(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def proves_no_job(outcome) -> bool:
    if isinstance(outcome, BaseException):
        return any(outcome is e for e in PRE_SEND)
    return outcome.status_code in http.POST_SAFE_STATUSES or outcome.status_code in (401,) or (
        outcome.status_code == 404 and any(h.startswith("x-clerk") for h in outcome.headers))


@FUZZ
@given(script=st.lists(outcomes, min_size=1, max_size=6), creates_job=st.booleans())
def test_retries_are_bounded_and_a_post_is_never_sent_twice_blindly(script, creates_job):
    t = transport(attempts=3)
    t.session = ScriptedSession(script)
    try:
        if creates_job:
            t.post_job("images/generate", {"prompt": "x"})
        else:
            t.get_json("jobs/job_1")
    except errors.ThreeDLabsError as err:
        assert "fuzz-token" not in str(err)
    sent = t.session.sent
    assert 1 <= len(sent) <= 3 + 1  # max_attempts, plus one repeat after a 401 for a refreshable token
    if creates_job:
        for earlier in sent[:-1]:
            assert proves_no_job(earlier), f"a POST was sent again after {earlier!r}"


# --- waiting for many jobs ---------------------------------------------------------------------

E = errors
STATUSES = [models.QUEUED, models.RUNNING, models.SUCCEEDED, models.FAILED, models.CANCELED]
TRANSIENT = [lambda: E.ServerError("bad gateway (HTTP 502)", status=502),
             lambda: E.NetworkError("connection reset"),
             lambda: E.RateLimitedError("slow down", status=429, retry_after=0.01),
             lambda: E.ResponseFormatError("invalid JSON")]
FATAL = [lambda: E.AuthError("Clerk says: session-token-expired", status=401),
         lambda: E.ForbiddenError("forbidden (HTTP 403)", status=403),
         lambda: E.OutOfCreditsError("no credits", status=402)]

events = st.one_of(
    st.tuples(st.sampled_from(STATUSES), st.one_of(st.none(), st.floats(0, 1))).map(lambda a: ("job",) + a),
    st.sampled_from(range(len(TRANSIENT))).map(lambda i: ("transient", i)),
    st.just(("404",)),
    st.sampled_from(range(len(FATAL))).map(lambda i: ("fatal", i)),
)
histories = st.lists(st.lists(events, min_size=1, max_size=8), min_size=1, max_size=6)


@pytest.fixture(scope="module", autouse=True)
def quick_engine():
    with pytest.MonkeyPatch.context() as mp:
        poll_fast(mp, 0.002)  # hypothesis runs many examples in one test
        yield


@FUZZ
@given(history=histories, grace=st.sampled_from([0.0, 0.05]))
def test_waiting_for_jobs_on_random_histories(history, grace):
    ids = [f"job_{i}" for i in range(len(history))]
    scripts = {jid: deque(h) for jid, h in zip(ids, history)}

    def get_job(jid):
        script = scripts[jid]
        event = script.popleft() if len(script) > 1 else script[0]
        if event[0] == "job":
            return Job(jid, event[1], progress=event[2], result={"ok": 1} if event[1] == models.SUCCEEDED else None,
                       error="boom" if event[1] == models.FAILED else None)
        if event[0] == "transient":
            raise TRANSIENT[event[1]]()
        if event[0] == "404":
            raise E.NotFoundError("Job not found (HTTP 404)", status=404)
        raise FATAL[event[1]]()

    timeout = 0.4
    started = time.monotonic()  # for a liveness bound only: histories repeat their last event forever
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(jobs, "NOT_FOUND_GRACE_SECONDS", grace)
            outcomes = collect_jobs(ScriptClient(get_job), ids, timeout)
    except E.BatchError as err:  # what the node raises when some failed: each failure in its item's slot
        failed = {f.index: f for f in err.failures}
        outcomes = [failed[i] if r is None else r for i, r in enumerate(err.results)]
    except E.JobError as err:  # one job only: its own error
        outcomes = [err]
    except (E.AuthError, E.ForbiddenError, E.OutOfCreditsError):
        assert any(ev[0] == "fatal" for h in history for ev in h), "a fatal error out of nowhere"
        return
    finally:
        assert time.monotonic() - started < 30, "the wait ignored its 0.4 s deadline"
    assert len(outcomes) == len(ids)
    many = len(ids) > 1
    for i, (jid, outcome, h) in enumerate(zip(ids, outcomes, history)):
        kinds = {ev[1] if ev[0] == "job" else ev[0] for ev in h}
        if isinstance(outcome, Job):
            assert outcome.status == models.SUCCEEDED and outcome.id == jid and models.SUCCEEDED in kinds
            continue
        assert isinstance(outcome, E.JobError), type(outcome)
        assert outcome.job_id == jid and outcome.index == (i if many else None)
        assert jid in str(outcome)
        if isinstance(outcome, E.JobCanceledError):
            assert models.CANCELED in kinds
        elif isinstance(outcome, E.JobStatusUnknownError):
            assert "transient" in kinds
        elif isinstance(outcome, E.JobFailedError):
            assert models.FAILED in kinds or "404" in kinds
        else:
            assert isinstance(outcome, E.JobTimeoutError), type(outcome)
