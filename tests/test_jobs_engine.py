"""The job engine's scheduling rules, driven by a scripted get_job (no network involved): one job as
``jobs.wait_job`` waits for it, several as the nodes wait for them (``NodeRun.collect``, a worker each)."""

from __future__ import annotations

import threading
import time

import pytest
from fake_client import ScriptClient

from conftest import pack_module
from node_runner import collect_jobs

jobs = pack_module("nodes.api.jobs")
errors = pack_module("nodes.api.errors")
Job = pack_module("nodes.api.models").Job


def poll_until_done(job_id, get_job, *, deadline, cancel_check=None, **kwargs):
    """One job's JobPoll stepped on this thread, as the run's pool steps it: sleep until due, poll, repeat."""
    poll = jobs.JobPoll(job_id, get_job, deadline=deadline, cancel_check=cancel_check, **kwargs)
    while True:
        jobs.sleep_unless_canceled(poll.due - time.monotonic(), cancel_check)
        outcome = poll.poll()
        if outcome is not None:
            return outcome


class Script:
    """A fake server: job i succeeds after durations[i] seconds; records concurrency."""

    def __init__(self, durations, *, fail=(), delay=0.0, not_found_for=0.0):
        self.t0 = time.monotonic()
        self.durations = durations
        self.fail = set(fail)
        self.delay = delay
        self.not_found_for = not_found_for
        self.polls = {}
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __call__(self, job_id):
        i = int(job_id.split("_")[1])
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.polls[i] = self.polls.get(i, 0) + 1
        try:
            time.sleep(self.delay)
            age = time.monotonic() - self.t0
            if age < self.not_found_for:
                raise errors.NotFoundError("Job not found", status=404)
            if age < self.durations[i]:
                return Job(job_id, "running", progress=age / self.durations[i])
            if i in self.fail:
                return Job(job_id, "failed", error=f"model refused prompt {i}")
            return Job(job_id, "succeeded", progress=1.0, result={"n": i})
        finally:
            with self.lock:
                self.active -= 1


def ids(n):
    return [f"job_{i}" for i in range(n)]


def wait(get_job, n, timeout):
    """Jobs 0..n-1 waited for as the nodes wait: results in input order, failures raised as the run raises them."""
    return collect_jobs(ScriptClient(get_job), ids(n), timeout)


def test_results_in_input_order_whatever_the_finish_order():
    script = Script([0.9, 0.1, 0.5, 0.3])
    out = wait(script, 4, 10)
    assert [j.result["n"] for j in out] == [0, 1, 2, 3]
    assert all(j.status == "succeeded" for j in out)


def test_first_poll_comes_quickly_and_intervals_grow():
    assert jobs.poll_interval(0, jitter=False) == jobs.MIN_INTERVAL
    assert jobs.poll_interval(60, jitter=False) == jobs.MAX_INTERVAL
    assert jobs.poll_interval(2, jitter=False) < jobs.poll_interval(10, jitter=False) < jobs.MAX_INTERVAL
    assert jobs.FIRST_POLL_SECONDS <= 0.5
    seen = []
    t0 = time.monotonic()
    wait(lambda jid: seen.append(time.monotonic() - t0) or Job(jid, "succeeded"), 1, 5)
    # The first poll comes at once (a liveness bound only: a loaded machine cannot fail it).
    assert len(seen) == 1 and seen[0] < 10


def test_polls_for_a_ten_minute_job_stay_bounded():
    # Simulated clock: count the polls the schedule would make over 600 s.
    t, polls = 0.0, 0
    t += jobs.FIRST_POLL_SECONDS
    while t < 600:
        polls += 1
        t += jobs.poll_interval(t, jitter=False)
    assert polls <= 150


def test_many_jobs_are_waited_for_at_once_a_worker_each():
    # Each status request takes 0.3 s and the first polls start at most 0.3 s apart: waited for in turn,
    # no two requests would ever overlap.
    script = Script([0.6] * 6, delay=0.3)
    out = wait(script, 6, 30)
    assert script.max_active > 1 and [j.result["n"] for j in out] == list(range(6))


def test_a_job_waited_for_only_after_the_deadline_is_still_polled_once():
    # A worker that starts late (the run's pool was busy) asks once before calling its job timed out.
    script = Script([0.0])
    assert poll_until_done("job_0", script, deadline=time.monotonic() - 1).status == "succeeded"
    assert isinstance(poll_until_done("job_0", Script([99]), deadline=time.monotonic() - 1), errors.JobTimeoutError)


def test_one_failure_keeps_the_others_results():
    script = Script([0.2, 0.2, 0.2], fail={1})
    with pytest.raises(errors.BatchError) as info:
        wait(script, 3, 10)
    err = info.value
    assert [f.job_id for f in err.failures] == ["job_1"]
    assert err.failures[0].index == 1
    assert "item 2" in str(err) and "model refused prompt 1" in str(err)
    assert err.results[0].result == {"n": 0} and err.results[1] is None and err.results[2].result == {"n": 2}


def test_single_failure_raises_the_job_error_itself():
    with pytest.raises(errors.JobFailedError) as info:
        wait(Script([0.1], fail={0}), 1, 10)
    assert info.value.job_id == "job_0" and "model refused prompt 0" in str(info.value)


def test_deadline_gives_timeout_errors_with_the_job_id():
    t0 = time.monotonic()
    with pytest.raises(errors.JobTimeoutError) as info:
        wait(Script([99]), 1, 0.8)
    assert time.monotonic() - t0 < 30  # liveness only
    assert info.value.job_id == "job_0" and "Job Wait" in str(info.value)


def test_cancel_check_runs_between_polls_and_its_exception_propagates():
    calls = []

    class Interrupted(Exception):
        pass

    def check():
        calls.append(time.monotonic())
        if len(calls) > 6:
            raise Interrupted()

    script = Script([99])
    with pytest.raises(Interrupted):
        poll_until_done("job_0", script, deadline=time.monotonic() + 30, cancel_check=check)
    # The sleeps between polls are cut into slices that each ask: more checks than polls. (A request
    # that hangs is the run's business: nodes/run.py checks Cancel itself while its workers wait.)
    assert jobs.CANCEL_CHECK_SECONDS <= 0.25
    assert len(calls) == 7 and script.polls[0] < len(calls)


def test_not_found_is_tolerated_right_after_creation():
    script = Script([0.6], not_found_for=0.4)
    out = wait(script, 1, 10)
    assert out[0].status == "succeeded"


def test_not_found_after_grace_is_a_failure_naming_the_id(monkeypatch):
    monkeypatch.setattr(jobs, "NOT_FOUND_GRACE_SECONDS", 0.3)
    script = Script([99], not_found_for=99)
    with pytest.raises(errors.JobFailedError) as info:
        wait(script, 1, 10)
    assert "job_0" in str(info.value) and "does not know" in str(info.value)


def test_progress_callback_sees_status_fraction_and_elapsed():
    seen = []
    poll_until_done("job_0", Script([0.6]), deadline=time.monotonic() + 10,
                  on_progress=lambda job, elapsed: seen.append((job.status, job.progress, elapsed)))
    assert any(s == "running" and 0 < p < 1 for s, p, _ in seen)
    assert all(e >= 0 for *_, e in seen)
    assert seen[-1][0] == "succeeded"


def test_auth_error_stops_everything_at_once():
    def get_job(jid):
        raise errors.AuthError("Clerk says: session-token-expired", status=401)
    with pytest.raises(errors.AuthError):
        wait(get_job, 3, 10)


def test_transient_poll_errors_are_retried():
    calls = {"n": 0}

    def get_job(jid):
        calls["n"] += 1
        if calls["n"] < 3:
            raise errors.ServerError("bad gateway (HTTP 502)", status=502)
        return Job(jid, "succeeded")

    assert wait(get_job, 1, 20)[0].status == "succeeded"
    assert calls["n"] == 3
