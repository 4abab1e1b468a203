"""Fault flags (what may go wrong on purpose) and the seeded dice that decide when it does.

Every flag is off by default. Rates are shares from 0 to 1; the dice are a seeded ``random.Random``
so that a run with the same flags and the same request order misbehaves the same way.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ENVELOPES = ("bare", "job", "data", "rotate")
IMAGE_SHAPES = ("url", "output_list", "images_objects", "data_url", "b64", "nested")
# Where result image URLs point: the stand-in CDN (no auth), or the API host itself, behind Clerk.
IMAGE_HOSTS = ("cdn", "api")
# How a job-creating POST answers once its job exists, and how a job's status is answered (sandbox/spoil.py).
POST_ANSWERS = ("ok", "refused_status_line", "deep_nesting", "bogus_charset", "many_objects")
POLL_ANSWERS = ("ok", "deep_nesting", "bogus_charset", "many_objects")

_RATES = frozenset(
    {"error_rate", "post_error_rate", "reset_rate", "malformed_json", "html_instead_of_json", "empty_200"}
)
_SWITCHES = frozenset({"fail_jobs", "hang_jobs", "drop_after_create", "corrupt_images", "huge_images",
                       "out_of_credits", "server_down", "reset_gets_only"})
_URLS = frozenset({"redirect_to"})
_NON_NEGATIVE = frozenset({"latency_ms", "job_404_seconds", "retry_after", "image_drip_bps",
                           "post_answer_delay_ms", "session_drip_bps"})
_CHOICES = {"envelope": ENVELOPES, "image_shape": IMAGE_SHAPES, "image_host": IMAGE_HOSTS,
            "post_answer": POST_ANSWERS, "poll_answer": POLL_ANSWERS}


@dataclass(frozen=True)
class Faults:
    """The current fault flags; replaced whole on every change, so readers never see half an update."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    post_error_rate: float = 0.0
    reset_rate: float = 0.0
    reset_gets_only: bool = False  # reset_rate spares POSTs (a reset POST cannot be retried safely)
    fail_jobs: bool = False
    hang_jobs: bool = False
    drop_after_create: bool = False
    malformed_json: float = 0.0
    html_instead_of_json: float = 0.0
    corrupt_images: bool = False
    huge_images: bool = False
    empty_200: float = 0.0
    job_404_seconds: float = 0.0
    envelope: str = "bare"
    image_shape: str = "url"
    image_host: str = "cdn"  # "api": result images are served by the API host and need the token
    fault_seed: int = 0
    retry_after: int = 1  # seconds in Retry-After of injected 429s; small so client tests stay fast
    out_of_credits: bool = False  # job-creating POSTs answer 402 and make no job
    server_down: bool = False  # every API answer is a 500
    redirect_to: str = ""  # every API answer is a 307 to this URL (clients must not follow with the token)
    image_drip_bps: float = 0.0  # result images trickle out at this many bytes a second (0: at once)
    post_answer: str = "ok"  # what a job-creating POST answers once its job exists (POST_ANSWERS)
    post_answer_delay_ms: float = 0.0  # ...and after how long: past the client's read timeout, the answer is lost
    poll_answer: str = "ok"  # what a job's status request answers (POLL_ANSWERS)
    session_drip_bps: float = 0.0  # the JSON of GET /api/session/:id trickles out likewise (0: at once)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FLAG_NAMES = tuple(f.name for f in fields(Faults))


def merged(current: Faults, flags: dict[str, Any]) -> Faults:
    """``current`` with ``flags`` applied; raises ValueError naming the first bad flag."""
    changes: dict[str, Any] = {}
    for name, value in flags.items():
        if name not in FLAG_NAMES:
            raise ValueError(f"unknown fault flag {name!r}; known flags: {', '.join(FLAG_NAMES)}")
        changes[name] = _checked(name, value)
    return replace(current, **changes)


def _checked(name: str, value: Any) -> Any:
    if name in _URLS:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a URL string")
        return value
    if name in _SWITCHES:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise ValueError(f"{name} must be true or false")
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {', '.join(_CHOICES[name])}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number")
    if name == "fault_seed":
        return int(value)
    if name in _RATES and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a share from 0 to 1")
    if name in _NON_NEGATIVE and value < 0:
        raise ValueError(f"{name} must not be negative")
    return int(value) if name == "retry_after" else float(value)


class Dice:
    """Seeded, thread-safe coin flips; rates of 0 and 1 never draw, so they leave the sequence alone."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def roll(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < rate

    def choice(self, options: tuple) -> Any:
        with self._lock:
            return self._rng.choice(options)
