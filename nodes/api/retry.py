"""The pack's one retry policy: what is tried again, how long to wait between tries, and Cancel.

Both the API calls (``http.py``) and the image downloads (``download.py``) run their attempts
through the client's :class:`RetryPolicy`, so counts, statuses, backoff and Retry-After are written
once. It is hand-written rather than urllib3's ``Retry`` on the session's adapter because ``Retry``
sleeps inside urllib3 with no cancel hook (ComfyUI's Cancel must end every wait) and cannot tell a
job-creating POST that provably never reached the application from one whose answer was lost.

Rules, because every job costs money:
- GETs are idempotent: connection errors, 429, 502, 503 and 504 (and unreadable bodies) are tried
  again with exponential backoff and full jitter, honouring Retry-After, within a bounded count
  and time.
- A job-creating POST is tried again only when it provably never reached the application (refused
  before sending) or on a 429; the caller decides that by raising :class:`Retryable` or not.
- Every sleep between tries ends as soon as the cancel check raises.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("3dlabs")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Only a 429 says no job was made: a 503 may come from the app after it made one, and a proxy's 502,
# 503 or 504 proves nothing about what happened behind it.
POST_SAFE_STATUSES = frozenset({429})
SLEEP_SLICE_SECONDS = 0.1  # how often a retry sleep looks at the cancel check
CancelCheck = Callable[[], None]
T = TypeVar("T")


class Retryable(Exception):
    """Raised by one attempt whose ``error`` may be tried again (after ``retry_after`` s if the server said)."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


def sleep_unless_canceled(seconds: float, cancel_check: CancelCheck | None) -> None:
    """Sleep ``seconds`` in short slices; ``cancel_check`` raises (ComfyUI's Cancel) to end it early."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        if cancel_check is not None:
            cancel_check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLEEP_SLICE_SECONDS))


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    max_total_seconds: float = 30.0
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        # Full jitter: spreads retries of many concurrent pollers instead of synchronising them.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))

    def run(self, attempt: Callable[[], T], *, cancel_check: CancelCheck | None = None, enabled: bool = True,
            time_left: Callable[[], float] | None = None, what: str = "request") -> T:
        """``attempt()`` until it returns or raises something other than :class:`Retryable`.

        Gives up with the last attempt's error after ``max_attempts``, or when the next sleep would
        pass ``max_total_seconds`` or ``time_left()`` (a caller's own deadline).
        """
        started = time.monotonic()
        tries = 0
        while True:
            try:
                return attempt()
            except Retryable as r:
                tries += 1
                delay = self.delay(tries - 1, r.retry_after)
                budget = self.max_total_seconds - (time.monotonic() - started)
                if time_left is not None:
                    budget = min(budget, time_left())
                if not enabled or tries >= self.max_attempts or delay >= budget:
                    raise r.error from None
                log.debug("3DLabs: %s failed (%s); retry %d in %.2fs", what, type(r.error).__name__, tries, delay)
                sleep_unless_canceled(delay, cancel_check)
