"""Counters the tests and the demo read back: requests per route, jobs created, auth failures, faults."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable

from .jobs import KINDS

JOB_KINDS = KINDS
FAULT_KEYS = (
    "429",
    "5xx",
    "reset",
    "drop_after_create",
    "latency",
    "malformed_json",
    "html",
    "empty_200",
    "job_404",
    "failed_job",
    "hung_job",
    "corrupt_image",
    "huge_image",
    "image_drip",
    "session_drip",
    "redirect",
    "out_of_credits",
    "slow_post_answer",
    "refused_status_line",
    "deep_nesting",
    "bogus_charset",
    "many_objects",
)


class Stats:
    """Thread-safe counters; ``snapshot`` returns a deep copy so callers can compare before and after."""

    def __init__(self, route_keys: Iterable[str]) -> None:
        self._route_keys = tuple(route_keys)
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._data = {
                "jobs_created": dict.fromkeys(JOB_KINDS, 0),
                "requests": dict.fromkeys(self._route_keys, 0),
                "auth_failures": 0,
                "file_requests": 0,
                "file_requests_with_authorization": 0,
                "faults_injected": dict.fromkeys(FAULT_KEYS, 0),
            }

    def request(self, key: str) -> None:
        with self._lock:
            requests = self._data["requests"]
            requests[key] = requests.get(key, 0) + 1

    def job_created(self, kind: str) -> None:
        with self._lock:
            self._data["jobs_created"][kind] += 1

    def auth_failure(self) -> None:
        with self._lock:
            self._data["auth_failures"] += 1

    def file_request(self, with_authorization: bool) -> None:
        with self._lock:
            self._data["file_requests"] += 1
            if with_authorization:
                self._data["file_requests_with_authorization"] += 1

    def fault(self, key: str) -> None:
        with self._lock:
            self._data["faults_injected"][key] += 1

    def snapshot(self) -> dict:
        with self._lock:
            data = copy.deepcopy(self._data)
        data["jobs_created_total"] = sum(data["jobs_created"].values())
        data["requests_total"] = sum(data["requests"].values())
        return data
