"""Waiting for 3DLabs jobs: one polling schedule, a job's polls one step at a time, the sleep that ends on Cancel.

The first poll comes at once, then the interval grows with the time waited (every ~0.3 s for a job
2 s old, every 5 s after a minute), shortened to land just after the end the job's progress predicts.
A 404 right after creation is waited through (a new job may not be visible yet); one failed job is
reported with its index and id without losing the others'.
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

CANCEL_CHECK_SECONDS = 0.1  # how often a wait (poll, retry sleep, a run's workers) looks at the cancel check
FIRST_POLL_SECONDS = 0.3
MIN_INTERVAL = 0.25
MAX_INTERVAL = 5.0
GROWTH = 0.12  # interval = GROWTH x time waited so far, within [MIN_INTERVAL, MAX_INTERVAL]
NOT_FOUND_GRACE_SECONDS = 15.0
MAX_CONSECUTIVE_POLL_ERRORS = 8
PREDICT_MIN_PROGRESS = 0.05
PREDICT_MARGIN = 0.05
PREDICT_FLOOR = 0.15


def sleep_unless_canceled(seconds: float, cancel_check: Callable[[], None] | None) -> None:
    """Sleep ``seconds`` in short slices; ``cancel_check`` raises (ComfyUI's Cancel) to end it early."""
    end = time.monotonic() + seconds
    while True:
        if cancel_check is not None:
            cancel_check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, CANCEL_CHECK_SECONDS))


def poll_interval(waited: float, *, jitter: bool = True) -> float:
    base = min(MAX_INTERVAL, max(MIN_INTERVAL, GROWTH * waited))
    # +-10% jitter keeps many pollers (and many users) from hitting the API in lock-step.
    return base * random.uniform(0.9, 1.1) if jitter else base


def fatal(err: BaseException) -> bool:
    """Errors that no amount of polling will fix and that concern every job alike."""
    return isinstance(err, (AuthError, ForbiddenError, OutOfCreditsError))


class JobPoll:
    """One job's polling, one request per :meth:`poll`: between two polls the job holds no thread (the
    node runs' pool polls every job when its :attr:`due` time comes). The job may answer 404 for
    NOT_FOUND_GRACE_SECONDS after ``created_at`` (a monotonic time)."""

    def __init__(self, job_id: str, get_job: Callable[[str], Job], *, deadline: float, index: int | None = None,
                 cancel_check: Callable[[], None] | None = None,
                 on_progress: Callable[[Job, float], None] | None = None, created_at: float | None = None) -> None:
        self.job_id, self.get_job, self.deadline, self.index = job_id, get_job, deadline, index
        self.cancel_check, self.on_progress = cancel_check, on_progress
        self.start = time.monotonic()
        self.born = self.start if created_at is None else created_at
        # A few jobs waited for together start a little apart, so their polls do not arrive in one burst.
        self.due = min(deadline, self.start + min(FIRST_POLL_SECONDS, 0.05 * (index or 0)))
        self.failures = 0
        self.job: Job | None = None

    def poll(self) -> Job | JobError | None:
        """Poll once: the outcome (never raised) once the job has ended or the deadline has passed, else
        None and the next poll's :attr:`due` time. Raised are only ``cancel_check``'s exception (ComfyUI's
        interrupt) and errors that concern every job."""
        job_id, index = self.job_id, self.index
        now = time.monotonic()
        try:
            job = self.get_job(job_id)
        except NotFoundError as err:
            if now - self.born >= NOT_FOUND_GRACE_SECONDS:
                return JobFailedError(f"3DLabs does not know this job id ({err.detail})", job_id=job_id, index=index)
            due = now + poll_interval(now - self.start)
        except ThreeDLabsError as err:
            if fatal(err):
                raise
            self.failures += 1
            if self.failures >= MAX_CONSECUTIVE_POLL_ERRORS or not isinstance(err, (APIError, NetworkError)):
                return JobStatusUnknownError(f"polling kept failing: {err.message}", job_id=job_id, index=index)
            wait_s = err.retry_after if isinstance(err, RateLimitedError) and err.retry_after else 0.0
            due = now + max(wait_s, poll_interval(now - self.start) * (1 + self.failures))
        else:
            self.failures, self.job = 0, job
            job.id = job.id or job_id
            if self.on_progress is not None:
                try:
                    self.on_progress(job, now - self.start)
                except Exception:  # noqa: BLE001  a UI callback must never break the wait...
                    if self.cancel_check is not None:
                        self.cancel_check()  # ...but a Cancel it met (an Exception in older ComfyUI) ends it now
            if job.status == "succeeded":
                return job
            if job.status == "failed":
                return JobFailedError(job.error or "no reason given by the server", job_id=job_id, index=index)
            if job.status == "canceled":
                return JobCanceledError(job.error or "", job_id=job_id, index=index)
            delay = poll_interval(now - self.start)
            # A job at 90% after 54 s ends at about 60 s: poll then, not at the next 5 s tick. Progress
            # counts from creation (queue time included); progress that lies costs only one poll.
            progress, running = job.progress, now - self.born
            if progress and running > 0 and PREDICT_MIN_PROGRESS <= progress < 1:
                delay = max(PREDICT_FLOOR, min(delay, running * (1 - progress) / progress + PREDICT_MARGIN))
            due = now + delay
        if time.monotonic() >= self.deadline:
            status = self.job.status if self.job else "unknown"
            return JobTimeoutError(f"still {status} after {self.deadline - self.start:.0f} s", job_id=job_id,
                                   index=index)
        self.due = min(due, self.deadline)
        return None


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
