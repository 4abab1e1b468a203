"""One run of a 3DLabs node: the template every job node follows, and the one pool that does the work.

A :class:`NodeRun` resolves the settings once and keeps them for the whole run (the client, the cap,
the dry run and the [SANDBOX] mark of the finish line all see the same ones). It refuses what must be
refused (inputs, the cap, a dry run) before any thread, allocation or request; then one pool does the
work: every job to pay for is submitted, and each job is waited for, its images downloaded, decoded
and written into the batch in one worker, so a quick job's image is ready while slow ones still run.
Jobs already paid for (the journal) go straight to collection. Cancel is checked in every wait, and
by the run itself at least every 0.2 s, so it ends the node at once even while a request hangs.
Failures are reported once every submitted job has been waited for, so nothing paid for is left
uncollected: the first in prompt order, naming its job, or a BatchError when several jobs failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from . import comfy, images, reuse, runtime, spend
from .api import jobs as engine
from .api.errors import JobError, JobFailedError, JobStatusUnknownError, JobTimeoutError, ThreeDLabsError
from .api.models import ImageRef, Job
from .progress import ProgressView

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

log = logging.getLogger("3dlabs")
RefsOf = Callable[[Job], list[ImageRef]]


class _Stopped(Exception):
    """The run has ended (an error, Cancel): a worker still busy stops at its next wait."""


class NodeRun:
    """Use as a context manager: a 3DLabs error leaving it writes the summary line first."""

    def __init__(self, label: str, node_id: str | None) -> None:
        self.label = label
        self.node_id = node_id
        self.settings = runtime.settings()
        self.tally = spend.tally()
        self.view = ProgressView(node_id, label)
        self.images: tuple | None = None  # (IMAGE, MASK) of the jobs' pictures, when asked for
        self._stop = threading.Event()

    def __enter__(self) -> NodeRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if isinstance(exc, ThreeDLabsError):
            self.finish()

    @property
    def client(self) -> ThreeDLabsClient:
        return runtime.client_for(self.settings)

    def finish(self, extra: str = "") -> str:
        """The node's last line, on the node and in the log: what this prompt's 3DLabs jobs came to."""
        line = self.tally.line()
        text = runtime.sandbox_mark(self.settings) + (f"{extra}\n{line}" if extra else line)
        self.view.text(text)
        log.info("%s", text.replace("\n", " | "))
        return text

    def dry_run(self, endpoint: str, bodies: list[dict], shown: dict | None = None, force: bool = False) -> str | None:
        """In a dry run, count the jobs against the cap and say what would be sent; else None."""
        if not (self.settings.dry_run or force):
            return None
        spend.reserve(self.tally, len(bodies), self.label, self.settings)
        spend.record(self.tally, dry_run=len(bodies))
        return self.finish(f"DRY RUN: would POST /api/{endpoint} {len(bodies)} time(s), first body "
                           f"{json.dumps(shown or bodies[0])} (nothing spent)")

    # --- the work ---------------------------------------------------------------------------------

    def jobs(self, kind: str, endpoint: str, bodies: list[dict], seed, *, labels: list[str], timeout: float,
             wait: bool = True, with_images: bool = False) -> list:
        """Jobs for ``bodies`` in order, reused where paid for already, else submitted within the cap.

        With ``wait`` the finished jobs (and, ``with_images``, their pictures in :attr:`images`);
        without it, the job ids as soon as they are submitted.
        """
        client = self.client
        plan = reuse.plan_jobs(client, self.tally, self.settings, self.label, kind, endpoint, bodies, seed, labels)
        with self._pool(len(bodies)) as pool:
            posts = self._gather([pool.submit(self._submit, client, plan, i) for i in plan.todo], fatal_ends=False)
            ids = [job.id if job else None for job in plan.reused]
            submit_errors = []
            for i, outcome in zip(plan.todo, posts):
                if isinstance(outcome, ThreeDLabsError):
                    submit_errors.append((i, outcome))
                else:
                    ids[i] = outcome
            n_reused = len(bodies) - len(plan.todo)
            spend.record(self.tally, submitted={kind: len(plan.todo) - len(submit_errors)}, reused=n_reused,
                         node=self.label)
            if n_reused:
                log.info("3DLabs: %s reused %d paid job(s) instead of submitting again", self.label, n_reused)
            if not wait:
                _raise_submit_errors(submit_errors, ids)
                return [i for i in ids if i]
            born = [reuse.created_at(client, job) for job in plan.reused]
            refs_of = client.image_refs_of if with_images else None
            outcomes = self._wait_all(pool, client, ids, plan.reused, born, timeout, refs_of)
        _raise_submit_errors(submit_errors, ids)
        return _raise_failures(outcomes)

    def collect(self, ids: list[str], created_at: list[float], timeout: float, refs_of: RefsOf) -> list[Job]:
        """Wait for jobs by id (nothing is submitted); ``refs_of`` says which images each result holds."""
        client = self.client
        with self._pool(len(ids)) as pool:
            outcomes = self._wait_all(pool, client, list(ids), [None] * len(ids), created_at, timeout, refs_of)
        return _raise_failures(outcomes)

    def _pool(self, n: int) -> _Pool:
        # A worker holds its job until it ends and sends one request at a time, mostly sleeping between
        # polls: a job waiting for a free worker would be seen finishing late, so workers are plenty.
        return _Pool(max(1, min(n, 4 * self.settings.max_in_flight)), self._stop)

    def _check(self) -> None:
        comfy.check_interrupt()
        if self._stop.is_set():
            raise _Stopped()

    def _submit(self, client: ThreeDLabsClient, plan: reuse.JobPlan, i: int) -> str:
        return client.submit(plan.endpoint, plan.kind, plan.bodies[i], request_key=plan.keys[i],
                             label=plan.labels[i], cancel_check=self._check)

    def _wait_all(self, pool: _Pool, client: ThreeDLabsClient, ids: list, known: list, born: list[float],
                  timeout: float, refs_of: RefsOf | None) -> list:
        live = [i for i, job_id in enumerate(ids) if job_id]
        batch = images.Batch(len(ids)) if refs_of is not None else None
        self.view.begin([ids[i] for i in live])
        deadline = time.monotonic() + timeout

        def start() -> list:
            return self._gather([pool.submit(self._collect, client, k, i, len(ids), ids[i], known[i], born[i],
                                             deadline, refs_of, batch) for k, i in enumerate(live)])

        outcomes: list = [None] * len(ids)
        for i, outcome in zip(live, runtime.wait_jobs(start)):
            outcomes[i] = outcome
        if batch is not None and not any(isinstance(o, ThreeDLabsError) for o in outcomes):
            self.images = batch.result()
        return outcomes

    def _collect(self, client: ThreeDLabsClient, k: int, i: int, n: int, job_id: str, known: Job | None,
                 born: float, deadline: float, refs_of: RefsOf | None, batch: images.Batch | None) -> Job:
        """One job, in one worker: wait for it (unless known finished), then fetch and decode its images."""
        job = known if known is not None and known.status == "succeeded" else None
        if job is None:
            outcome = engine.wait_job(job_id, lambda jid: client.get_job(jid, cancel_check=self._check),
                                      deadline=deadline, index=i if n > 1 else None, cancel_check=self._check,
                                      created_at=born, on_progress=lambda job, _: self.view(k, job))
            _journal_outcome(client, job_id, outcome)
            spend.record(self.tally, succeeded=isinstance(outcome, Job), failed=isinstance(outcome, JobError))
            if isinstance(outcome, JobError):
                raise outcome
            job = outcome
        else:
            self.view(k, job)
        if refs_of is not None and batch is not None:
            size = comfy.preview_size()
            pictures = [images.decode(client.fetch_image(ref, job_id=job.id, cancel_check=self._check),
                                      source=images.batch_label(i, f"job {job.id}"), preview=size)
                        for ref in refs_of(job)]
            batch.put(i, pictures)
            for px in pictures:  # the decoded copy: a preview costs no download
                preview, px.preview = px.preview, None
                self.view.preview(preview)
        return job

    def _gather(self, futures: list[Future], fatal_ends: bool = True) -> list:
        """Each future's result or 3DLabs error, in order. Cancel, a bug, or while waiting an error that
        concerns every job (auth, credits) ends the run at once; other errors wait for the rest."""
        pending = set(futures)
        while pending:
            comfy.check_interrupt()
            done, pending = wait(pending, timeout=engine.CANCEL_CHECK_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                err = future.exception()
                if err is not None and (not isinstance(err, ThreeDLabsError) or fatal_ends and engine.fatal(err)):
                    raise err
        return [f.exception() or f.result() for f in futures]


class _Pool(ThreadPoolExecutor):
    """The run's workers. Leaving never waits for a worker stuck in a request: the run's stop flag ends
    it at its next wait, and Cancel must not wait for a hanging server."""

    def __init__(self, workers: int, stop: threading.Event) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="3dlabs-run")
        self._run_stop = stop

    def __exit__(self, *exc_info) -> None:
        self._run_stop.set()
        self.shutdown(wait=False, cancel_futures=True)


def _journal_outcome(client: ThreeDLabsClient, job_id: str, outcome: Job | JobError) -> None:
    """The end of a wait goes to the journal; only a job the server reported failed is "failed", so
    that a re-run resumes the others instead of paying again."""
    if isinstance(outcome, Job):
        client.journal.record_state(job_id, outcome.status)
        return
    state = ("timed-out" if isinstance(outcome, JobTimeoutError)
             else "unknown" if isinstance(outcome, JobStatusUnknownError) else "failed")
    client.journal.record_state(job_id, state, error=outcome.detail)


def _raise_failures(outcomes: list) -> list[Job]:
    """Failed jobs first (the error itself, or a BatchError naming each), then the first other error in
    prompt order (a download, an unreadable result, a damaged image), each naming its job."""
    engine.raise_for_failures([o if isinstance(o, (Job, JobError)) else None for o in outcomes]
                              if any(isinstance(o, JobError) for o in outcomes) else [])
    for outcome in outcomes:
        if isinstance(outcome, ThreeDLabsError):
            raise outcome
    return outcomes


def _raise_submit_errors(errors: list[tuple[int, ThreeDLabsError]], ids: list) -> None:
    if not errors:
        return
    total = len(ids)
    if total == 1:
        raise errors[0][1]
    first_i, first = errors[0]
    if isinstance(first, JobFailedError):
        raise first
    made = sum(1 for i in ids if i)
    more = f" ({len(errors)} items failed to submit)" if len(errors) > 1 else ""
    raise type(first)(
        f"item {first_i + 1} of {total}: {first.message}{more}. The {made} job(s) that were submitted are in the "
        "journal; queue again to submit only what is missing",
        status=first.status, summary=f"Submitting item {first_i + 1} of {total} to 3DLabs failed.",
    )
