"""A finished job's result images as bytes, each download naming the paid job and ending on Cancel.

The nodes fetch inside their run's workers (``nodes/run.py``); this is the same fetch for callers
that hold finished jobs and want their bytes: no tensors, no HTTP of its own (the client fetches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import comfy
from .api.models import Job

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient


class Downloads:
    def __init__(self, client: ThreeDLabsClient) -> None:
        self._client = client

    def __enter__(self) -> Downloads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def collect(self, jobs: list[Job]) -> tuple[list[bytes], list[str]]:
        """Every result image of ``jobs`` in job order, with a source label (the paid job) for each.

        A result that names no image, or a failed download, raises naming its job (it is paid for, so it
        can be collected again by id).
        """
        data: list[bytes] = []
        sources: list[str] = []
        for job in jobs:
            for ref in self._client.image_refs_of(job):
                data.append(self._client.fetch_image(ref, job_id=job.id, cancel_check=comfy.check_interrupt))
                sources.append(f"job {job.id}")
        return data, sources
