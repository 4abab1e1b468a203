"""Waiting for a 3DLabs job: one polling schedule, one plain function per job.

Polling adapts to the job's age: the first poll comes at once, then the interval grows with the time
already waited (a job that has run 2 s is checked every ~0.3 s, one that has run a minute every 5 s),
and is shortened to land just after the end the job's own progress predicts. Sleeps between polls
run in slices that call the cancel check. A 404 right after creation is waited through (a new job may
not be visible yet); one failed job is reported with its index and id without losing the others'.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

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
PREDICT_MIN_PROGRESS = 0.05
PREDICT_MARGIN = 0.05
PREDICT_FLOOR = 0.15

ProgressCallback = Callable[[int, Job, float], None]


def poll_interval(waited: float, *, jitter: bool = True) -> float:
    base = min(MAX_INTERVAL, max(MIN_INTERVAL, GROWTH * waited))
    # +-10% jitter keeps many pollers (and many users) from hitting the API in lock-step.
    return base * random.uniform(0.9, 1.1) if jitter else base


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


def fatal(err: BaseException) -> bool:
    """Errors that no amount of polling will fix and that concern every job alike."""
    return isinstance(err, (AuthError, ForbiddenError, OutOfCreditsError))


def _sleep_until(when: float, cancel_check, clock) -> None:
    while True:
        if cancel_check is not None:
            cancel_check()
        left = when - clock()
        if left <= 0:
            return
        time.sleep(min(CANCEL_CHECK_SECONDS, left))


def wait_job(job_id: str, get_job: Callable[[str], Job], *, deadline: float, index: int | None = None,
             cancel_check: Callable[[], None] | None = None, on_progress: Callable[[Job, float], None] | None = None,
             created_at: float | None = None, not_found_grace: float | None = None,
             clock: Callable[[], float] = time.monotonic) -> Job | JobError:
    """Poll one job until it ends or ``deadline`` (a ``clock`` time) passes; its outcome, never raised.

    ``cancel_check`` may raise to stop waiting (ComfyUI's interrupt); it propagates, and so do errors
    that concern every job (auth, forbidden, out of credits). ``created_at`` (a ``clock`` time) lets the
    job answer 404 for ``not_found_grace`` seconds after it was created. ``index`` goes into the errors.
    """
    grace = NOT_FOUND_GRACE_SECONDS if not_found_grace is None else not_found_grace
    start = clock()
    born = start if created_at is None else created_at
    # A few jobs waited for together start a little apart, so their polls do not arrive in one burst.
    due = start + min(FIRST_POLL_SECONDS, 0.05 * (index or 0))
    failures = 0
    job: Job | None = None
    while True:
        _sleep_until(min(due, deadline), cancel_check, clock)
        now = clock()
        try:
            job = get_job(job_id)
        except NotFoundError as err:
            if now - born >= grace:
                return JobFailedError(f"3DLabs does not know this job id ({err.detail})", job_id=job_id, index=index)
            due = now + poll_interval(now - start)
        except ThreeDLabsError as err:
            if fatal(err):
                raise
            failures += 1
            if failures >= MAX_CONSECUTIVE_POLL_ERRORS or not isinstance(err, (APIError, NetworkError)):
                return JobStatusUnknownError(f"polling kept failing: {err.message}", job_id=job_id, index=index)
            wait_s = err.retry_after if isinstance(err, RateLimitedError) and err.retry_after else 0.0
            due = now + max(wait_s, poll_interval(now - start) * (1 + failures))
        else:
            failures = 0
            job.id = job.id or job_id
            if on_progress is not None:
                try:
                    on_progress(job, now - start)
                except Exception:  # noqa: BLE001  a UI callback must never break the wait
                    pass
            if job.status == "succeeded":
                return job
            if job.status == "failed":
                return JobFailedError(job.error or "no reason given by the server", job_id=job_id, index=index)
            if job.status == "canceled":
                return JobCanceledError(job.error or "", job_id=job_id, index=index)
            # Progress is measured from creation: queue time counts as elapsed job time for the estimate.
            due = now + next_poll_delay(now - start, job.progress, now - born if job.progress else None)
        if clock() >= deadline:
            status = job.status if job else "unknown"
            return JobTimeoutError(f"still {status} after {deadline - start:.0f} s", job_id=job_id, index=index)


def wait_for_jobs(job_ids: Sequence[str], get_job: Callable[[str], Job], *, timeout: float = 600.0,
                  cancel_check: Callable[[], None] | None = None, on_progress: ProgressCallback | None = None,
                  max_in_flight: int = 1, created_at: Sequence[float] | None = None,
                  not_found_grace: float | None = None, raise_on_failure: bool = True,
                  clock: Callable[[], float] = time.monotonic) -> list[Job | JobError]:
    """Wait for several jobs under one deadline, on this thread; outcomes in input order.

    The jobs run on the server at the same time, so waiting for them one after the other costs no
    more than the slowest one, and every job is polled at least once even after the deadline.
    ``max_in_flight`` is accepted from older callers; the nodes wait for each job in a worker of
    their own (``nodes/run.py``). With ``raise_on_failure`` a failure raises (see
    :func:`raise_for_failures`); otherwise its JobError sits in the job's slot.
    """
    deadline = clock() + max(0.0, timeout)
    many = len(job_ids) > 1
    outcomes: list[Job | JobError] = []
    for i, job_id in enumerate(job_ids):
        def progress(job: Job, elapsed: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress(i, job, elapsed)

        outcomes.append(wait_job(str(job_id), get_job, deadline=deadline, index=i if many else None,
                                 cancel_check=cancel_check, on_progress=progress,
                                 created_at=created_at[i] if created_at is not None else None,
                                 not_found_grace=not_found_grace, clock=clock))
    if raise_on_failure:
        raise_for_failures(outcomes)
    return outcomes


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
