"""Waiting for 3DLabs jobs: one or many, concurrently, under one deadline.

Polling adapts to the job's age: the first poll comes within 0.5 s, then the interval grows with
the time already waited (a job that has run 2 s is checked every ~0.3 s, one that has run a
minute every 5 s), so short jobs are seen finishing quickly and long jobs cost few requests. Many
jobs share a bounded pool of HTTP requests in flight; the cancel check runs at least every 0.25 s
whatever the HTTP layer is doing; results come back in input order, and one failed job is reported
with its index and id without losing the others' results.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from .errors import (
    APIError,
    AuthError,
    BatchError,
    ForbiddenError,
    JobCanceledError,
    JobError,
    JobFailedError,
    JobStatusUnknownError,
    JobTimeoutError,
    NetworkError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    ThreeDLabsError,
)
from .models import Job

CANCEL_CHECK_SECONDS = 0.2
FIRST_POLL_SECONDS = 0.3
MIN_INTERVAL = 0.25
MAX_INTERVAL = 5.0
GROWTH = 0.12  # interval = GROWTH x time waited so far, within [MIN_INTERVAL, MAX_INTERVAL]
NOT_FOUND_GRACE_SECONDS = 15.0
MAX_CONSECUTIVE_POLL_ERRORS = 8

ProgressCallback = Callable[[int, Job, float], None]


def poll_interval(waited: float, *, jitter: bool = True) -> float:
    base = min(MAX_INTERVAL, max(MIN_INTERVAL, GROWTH * waited))
    # +-10% jitter keeps many pollers (and many users) from hitting the API in lock-step.
    return base * random.uniform(0.9, 1.1) if jitter else base


PREDICT_MIN_PROGRESS = 0.05
PREDICT_MARGIN = 0.05
PREDICT_FLOOR = 0.15


def next_poll_delay(waited: float, progress: float | None, running_for: float | None, *,
                    jitter: bool = True) -> float:
    """The age-based interval, shortened to land just after the end the job's progress predicts.

    A job at 90% after 54 s will end at about 60 s: polling then, not at the next 5 s tick, is what
    makes detection a small fraction of the job's duration. Progress that lies only costs one poll.
    """
    delay = poll_interval(waited, jitter=jitter)
    if progress is None or running_for is None or running_for <= 0 or not PREDICT_MIN_PROGRESS <= progress < 1:
        return delay
    remaining = running_for * (1 - progress) / progress
    return max(PREDICT_FLOOR, min(delay, remaining + PREDICT_MARGIN))


class _Tracked:
    __slots__ = ("index", "job_id", "started", "job", "errors", "outcome")

    def __init__(self, index: int, job_id: str, started: float) -> None:
        self.index = index
        self.job_id = job_id
        self.started = started
        self.job: Job | None = None
        self.errors = 0
        self.outcome: Job | JobError | None = None


def _fatal(err: Exception) -> bool:
    """Errors that no amount of polling will fix and that concern every job alike."""
    return isinstance(err, (AuthError, ForbiddenError, OutOfCreditsError))


def wait_for_jobs(
    job_ids: Sequence[str],
    get_job: Callable[[str], Job],
    *,
    timeout: float = 600.0,
    cancel_check: Callable[[], None] | None = None,
    on_progress: ProgressCallback | None = None,
    max_in_flight: int = 8,
    created_at: Sequence[float] | None = None,
    not_found_grace: float | None = None,
    raise_on_failure: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> list[Job | JobError]:
    """Poll every job until it ends or ``timeout`` passes; return outcomes in input order.

    ``get_job`` fetches one job (it may raise the client's typed errors). ``cancel_check`` may raise
    any exception to stop waiting; it propagates unchanged (ComfyUI's interrupt does this).
    ``created_at`` (monotonic times) lets a job answer 404 for a while after it was created.
    With ``raise_on_failure`` a BatchError (or, for a single job, the JobError itself) is raised
    when any job failed; otherwise the list holds a JobError in that job's slot.
    """
    if not job_ids:
        return []
    if not_found_grace is None:  # read at call time, so that the module's value can be tuned
        not_found_grace = NOT_FOUND_GRACE_SECONDS
    start = clock()
    deadline = start + max(0.0, timeout)
    tracked = [
        _Tracked(i, str(jid), created_at[i] if created_at is not None else start) for i, jid in enumerate(job_ids)
    ]
    # Heap of (due time, index): the soonest poll first.
    due: list[tuple[float, int]] = [(start + min(FIRST_POLL_SECONDS, 0.05 * i), i) for i in range(len(tracked))]
    heapq.heapify(due)
    in_flight: dict[Future, _Tracked] = {}
    pending = len(tracked)
    stop = threading.Event()

    def poll(t: _Tracked) -> Job:
        if stop.is_set():
            raise _Stopped()
        return get_job(t.job_id)

    pool = ThreadPoolExecutor(max_workers=max(1, max_in_flight), thread_name_prefix="3dlabs-poll")
    try:
        while pending:
            if cancel_check is not None:
                cancel_check()
            now = clock()
            if now >= deadline:
                for t in tracked:
                    if t.outcome is None:
                        t.outcome = JobTimeoutError(
                            f"still {t.job.status if t.job else 'unknown'} after {timeout:.0f} s",
                            job_id=t.job_id, index=t.index if len(tracked) > 1 else None)
                break
            while due and due[0][0] <= now and len(in_flight) < max_in_flight:
                _, i = heapq.heappop(due)
                in_flight[pool.submit(poll, tracked[i])] = tracked[i]
            wake = min(CANCEL_CHECK_SECONDS, max(0.0, deadline - now))
            if due and len(in_flight) < max_in_flight:
                wake = min(wake, max(0.0, due[0][0] - now))
            if not in_flight:
                time.sleep(wake)
                continue
            done, _ = wait(list(in_flight), timeout=wake, return_when=FIRST_COMPLETED)
            for fut in done:
                t = in_flight.pop(fut)
                now = clock()
                next_due = _settle(t, fut, now, start, not_found_grace, len(tracked) > 1)
                if t.outcome is not None:
                    pending -= 1
                else:
                    heapq.heappush(due, (min(next_due, deadline), t.index))
                if on_progress is not None and t.job is not None:
                    try:
                        on_progress(t.index, t.job, now - start)
                    except Exception:  # noqa: BLE001  a UI callback must never break the wait
                        pass
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)

    outcomes = [t.outcome for t in tracked]
    if raise_on_failure:
        raise_for_failures(outcomes)
    return outcomes  # type: ignore[return-value]


def raise_for_failures(outcomes: Sequence[Job | JobError | None]) -> None:
    """Raise what the user sees when any outcome is a JobError: the error itself for a single job,
    else a BatchError naming each failed item by its position, with the other results kept."""
    failures = [o for o in outcomes if isinstance(o, JobError)]
    if not failures:
        return
    if len(outcomes) == 1:
        raise failures[0]
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, JobError):
            outcome.index = i
    raise BatchError(failures, [o if isinstance(o, Job) else None for o in outcomes])


class _Stopped(Exception):
    pass


def _settle(t: _Tracked, fut: Future, now: float, start: float, grace: float, many: bool) -> float:
    """Record one poll's result on ``t``; return when to poll next (if it is not finished)."""
    index = t.index if many else None
    try:
        job = fut.result()
    except _Stopped:
        return now
    except NotFoundError as err:
        if now - t.started < grace:
            return now + poll_interval(now - start)
        t.outcome = JobFailedError(f"3DLabs does not know this job id ({err.detail})", job_id=t.job_id, index=index)
        return now
    except ThreeDLabsError as err:
        if _fatal(err):
            raise
        t.errors += 1
        if t.errors >= MAX_CONSECUTIVE_POLL_ERRORS or not isinstance(err, (APIError, NetworkError)):
            t.outcome = JobStatusUnknownError(f"polling kept failing: {err.message}", job_id=t.job_id, index=index)
            return now
        wait_s = err.retry_after if isinstance(err, RateLimitedError) and err.retry_after else 0.0
        return now + max(wait_s, poll_interval(now - start) * (1 + t.errors))
    t.errors = 0
    job.id = job.id or t.job_id
    t.job = job
    if job.status == "succeeded":
        t.outcome = job
    elif job.status == "failed":
        t.outcome = JobFailedError(job.error or "no reason given by the server", job_id=t.job_id, index=index)
    elif job.status == "canceled":
        t.outcome = JobCanceledError(job.error or "", job_id=t.job_id, index=index)
    # Progress is measured from creation: queue time counts as elapsed job time for the estimate.
    running_for = now - t.started if job.progress else None
    return now + next_poll_delay(now - start, job.progress, running_for)
