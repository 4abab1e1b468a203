"""Result image bytes of finished jobs, fetched concurrently and started as soon as each job finishes.

Image Generate and Job Wait wait for lists of jobs, which rarely end together. Each finished job's
images start downloading while the others still run (a reused job's at once), so after the last job
only its own images are left to fetch; result URLs also expire, so fetching early is the safer order.
Each download names its paid job in its errors and stops on ComfyUI's Cancel (the client's deadline
bounds it too). Bytes only: no tensors here, and no HTTP of its own (the client fetches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from . import comfy
from .api.errors import ThreeDLabsError
from .api.models import ImageRef, Job

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient


class Downloads:
    """Downloads of the result images of jobs, each started once, collected in job order.

    :meth:`start` may be called from any thread (the wait loop calls it as a job succeeds); a job whose
    result names no image is left for :meth:`collect`, which reports that properly. Use as a context
    manager: leaving drops the downloads nobody will read (after an error or a Cancel).
    """

    def __init__(self, client: ThreeDLabsClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._started: dict[str, list[Future]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Downloads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, job: Job, then: Callable[[list[bytes], list[str]], None] | None = None) -> None:
        """Begin fetching a succeeded job's images (once per job).

        ``then`` is given the job's images and their source labels (as :meth:`collect` names them) once
        all of them have arrived: on a download thread, or at once on this one if they already have;
        not at all if one of them failed.
        """
        self._begin(job, quiet=True)
        futures = self._started.get(job.id)
        if then is not None and futures:
            _when_all_fetched(futures, lambda: then([f.result() for f in futures], [_source(job.id)] * len(futures)))

    def collect(self, jobs: list[Job]) -> tuple[list[bytes], list[str]]:
        """Every result image of ``jobs``, in job order, with a source label for each.

        A result that names no image raises first; then the first failed download in job order,
        naming its job (it is paid for, so it can be collected again by id).
        """
        for job in jobs:
            self._begin(job, quiet=False)
        futures = [(job.id, fut) for job in jobs for fut in self._started[job.id]]
        return [fut.result() for _, fut in futures], [_source(job_id) for job_id, _ in futures]

    def _begin(self, job: Job, *, quiet: bool) -> None:
        if job.id in self._started:
            return
        try:
            refs = self._client.image_refs_of(job)
        except ThreeDLabsError:
            if quiet:  # collect() reads the result again and raises this with the job named
                return
            raise
        pool = self._executor()
        with self._lock:
            if job.id not in self._started:
                self._started[job.id] = [pool.submit(self._fetch, job.id, ref) for ref in refs]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._client.settings.max_in_flight,
                                                thread_name_prefix="3dlabs-download")
            return self._pool

    def _fetch(self, job_id: str, ref: ImageRef) -> bytes:
        # Errors name the paid job, so that it can be collected again by id.
        return self._client.fetch_image(ref, job_id=job_id, cancel_check=comfy.check_interrupt)


def _source(job_id: str) -> str:
    """How an image is named in errors: by the paid job it came from."""
    return f"job {job_id}"


def _when_all_fetched(futures: list[Future], then: Callable[[], None]) -> None:
    """Call ``then`` once every future has succeeded (on the thread that finished the last one, or on
    this one if all are done already)."""
    lock, left = threading.Lock(), [len(futures)]

    def one_done(_: Future) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last and all(not f.cancelled() and f.exception() is None for f in futures):
            then()

    for future in futures:
        future.add_done_callback(one_done)
