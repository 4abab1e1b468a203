"""One run of a 3DLabs node: the template every job node follows, the process's one pool, what the node shows.

The settings are resolved once per run: the client, the cap, the dry run and the [SANDBOX] mark of the
finish line all see the same ones. Inputs, the cap and a dry run are refused before any thread,
allocation or request. Every request of every node run (each POST, each poll, each download with its
decoding) runs in the process's one pool of max_in_flight workers; a job waiting between two polls holds
no thread: its run's own thread starts the next poll when it is due. Jobs paid for already, per the
journal, go straight to collection; each job's images are downloaded, decoded and written into the
batch as soon as it ends, so a quick job's image is ready while slow ones still run. Cancel is checked
in every wait, and by the run itself several times a second, so it ends the node at once even while a
request hangs. Failures are reported once every submitted job has been waited for, so nothing paid for
is left uncollected: the first in prompt order, naming its job, or a BatchError when several failed.
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, NamedTuple

from . import clients, comfy, images, reuse, spend
from .api import jobs as engine
from .api.errors import (
    AnswerLostError,
    JobError,
    JobFailedError,
    JobStatusUnknownError,
    JobTimeoutError,
    MaybeSubmittedError,
    ThreeDLabsError,
)
from .api.models import ImageRef, Job

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

log = logging.getLogger("3dlabs")
RefsOf = Callable[[Job], list[ImageRef]]
TEXT_EVERY = 0.5  # seconds between status lines while jobs run
_pool: tuple[int, ThreadPoolExecutor] | None = None  # the process's one pool, and its size
_pool_lock = threading.Lock()


def submit(size: int, fn: Callable, *args) -> Future:
    """Run ``fn(*args)`` in the process's one pool of ``size`` (max_in_flight) workers, shared by every
    node run. A changed setting makes a new pool; the old one's workers end once their work has."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != size:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (size, ThreadPoolExecutor(size, thread_name_prefix="3dlabs-run"))
        return _pool[1].submit(fn, *args)


class Again(NamedTuple):
    """What a step of a run returns to be run again at the monotonic time ``due`` (a job's next poll)."""

    due: float


class _Stopped(Exception):
    """The run has ended (an error, Cancel): a worker still busy stops at its next wait."""


class NodeRun:
    """Use as a context manager: a 3DLabs error leaving it writes the summary line first."""

    def __init__(self, label: str, node_id: str | None) -> None:
        self.label = label
        self.settings = clients.settings()
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
        return clients.client_for(self.settings)

    def finish(self, extra: str = "") -> str:
        """The node's last line, on the node and in the log: what this prompt's 3DLabs jobs came to."""
        line = self.tally.line()
        mark = "[SANDBOX] " if self.settings.base_url_source == "bundled sandbox" else ""
        text = mark + (f"{extra}\n{line}" if extra else line)
        self.view.bar.text(text)
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

    def jobs(self, kind: str, endpoint: str, bodies: list[dict], seed, *, labels: list[str], timeout: float,
             wait: bool = True, with_images: bool = False) -> list:
        """Jobs for ``bodies`` in order, reused where paid for already, else submitted within the cap.

        With ``wait`` the finished jobs (and, ``with_images``, their pictures in :attr:`images`);
        without it, the job ids as soon as they are submitted.
        """
        client = self.client
        plan = reuse.plan_jobs(client, self.tally, self.settings, self.label, kind, endpoint, bodies, seed, labels)
        try:
            posts = self._gather([functools.partial(client.submit_once, endpoint, kind, bodies[i],
                                                    request_key=plan.keys[i], label=labels[i],
                                                    cancel_check=self._check, once=plan.reuse)
                                  for i in plan.todo], fatal_ends=False)
        finally:
            # Journaled by now (or lost, and journaled as maybe submitted): the journal counts them.
            # On Cancel a POST may still be under way; its row then lands a moment later.
            plan.hold.release()
        ids = [job.id if job else None for job in plan.reused]
        for i, outcome in zip(plan.todo, posts):
            ids[i] = None if isinstance(outcome, ThreeDLabsError) else outcome.job_id
        submit_errors = [(i, err) for i, err in zip(plan.todo, posts) if isinstance(err, ThreeDLabsError)]
        # A job another node's (or process's) POST of the same request made is reused: nothing was paid here.
        paid = sum(1 for outcome in posts if not isinstance(outcome, ThreeDLabsError) and outcome.paid)
        n_reused = len(bodies) - len(plan.todo) + len(posts) - len(submit_errors) - paid
        spend.record(self.tally, kind=kind, submitted=paid, node=self.label, reused=n_reused)
        if n_reused:
            log.info("3DLabs: %s reused %d paid job(s) instead of submitting again", self.label, n_reused)
        if wait:
            born = [reuse.created_at(client, job) for job in plan.reused]
            refs_of = client.image_refs_of if with_images else None
            outcomes = self._wait_all(client, ids, plan.reused, born, timeout, refs_of)
        _raise_submit_errors(submit_errors, ids)
        return _raise_failures(outcomes) if wait else [i for i in ids if i]

    def collect(self, ids: list[str], created_at: list[float], timeout: float, refs_of: RefsOf) -> list[Job]:
        """Wait for jobs by id (nothing is submitted); ``refs_of`` says which images each result holds."""
        return _raise_failures(self._wait_all(self.client, list(ids), [None] * len(ids), created_at, timeout, refs_of))

    def pixel_budget(self) -> images.PixelBudget:
        """The decoded pixels this run's images may take (the settings' THREEDLABS_MAX_DECODED_MEGAPIXELS)."""
        return images.PixelBudget(self.settings.max_decoded_megapixels)

    def each(self, fn: Callable, items) -> list:
        """Work besides jobs (Load Project's answer, then its images) in the process's pool: ``fn(item,
        cancel_check)`` for each item, waited for with Cancel checked; the results in order (or the first
        error in order, once all have ended)."""
        return _raise_failures(self._gather([functools.partial(fn, item, self._check) for item in items]))

    def _check(self) -> None:
        comfy.check_interrupt()
        if self._stop.is_set():
            raise _Stopped()

    def _step(self, fn: Callable):
        self._check()  # a step of a run that has ended never starts
        return fn()

    def _wait_all(self, client: ThreeDLabsClient, ids: list, known: list, born: list[float], timeout: float,
                  refs_of: RefsOf | None) -> list:
        live = [i for i, job_id in enumerate(ids) if job_id]
        batch = images.Batch(len(ids), self.pixel_budget()) if refs_of is not None else None
        self.view.begin([ids[i] for i in live])
        deadline = time.monotonic() + timeout

        def step(k: int, i: int, poll: engine.JobPoll | None) -> Job | Again:
            """One job's turn in a worker: one poll (none if known finished), and once it has ended its
            images fetched, decoded and written into the batch."""
            if poll is None:
                job = known[i]
                self.view(k, job)
            else:
                job = poll.poll()
                if job is None:
                    return Again(poll.due)
                if isinstance(job, JobError):
                    # Only a job the server reported failed is "failed": a re-run resumes the others
                    # instead of paying again.
                    state = ("timed-out" if isinstance(job, JobTimeoutError)
                             else "unknown" if isinstance(job, JobStatusUnknownError) else "failed")
                    client.journal.record_state(ids[i], state, error=job.detail)
                    spend.record(self.tally, failed=1)
                    raise job
                client.journal.record_state(ids[i], job.status)
                spend.record(self.tally, succeeded=1)
            if batch is not None:
                size = comfy.preview_size()
                pictures = [batch.decode(lambda r=ref: client.fetch_image(r, job_id=job.id, cancel_check=self._check),
                                         source=images.batch_label(i, f"job {job.id}"), preview=size)
                            for ref in refs_of(job)]
                batch.put(i, pictures)
                for px in pictures:  # the decoded copy: a preview costs no download
                    preview, px.preview = px.preview, None
                    self.view.preview(preview)
            return job

        def watch(k: int, i: int) -> engine.JobPoll | None:
            if known[i] is not None and known[i].status == "succeeded":
                return None
            return engine.JobPoll(ids[i], lambda jid: client.get_job(jid, cancel_check=self._check),
                                  deadline=deadline, index=i if len(ids) > 1 else None, cancel_check=self._check,
                                  created_at=born[i], on_progress=lambda job, _: self.view(k, job))

        polls = [watch(k, i) for k, i in enumerate(live)]
        steps = [functools.partial(step, k, i, poll) for k, (i, poll) in enumerate(zip(live, polls))]
        outcomes: list = [None] * len(ids)
        waits = wait_jobs(lambda: self._gather(steps, due=[poll.due if poll else 0.0 for poll in polls]))
        for i, outcome in zip(live, waits):
            outcomes[i] = outcome
        if batch is not None and not any(isinstance(o, ThreeDLabsError) for o in outcomes):
            self.images = batch.result()
        return outcomes

    def _gather(self, steps: list[Callable], fatal_ends: bool = True, due: list[float] | None = None) -> list:
        """Each step's result or 3DLabs error, in order; each runs in the process's pool (at its ``due``
        monotonic time, if given), again at the time an :class:`Again` it returns names. Cancel, a bug, or
        (``fatal_ends``) an error that concerns every job ends the run at once; other errors wait for the rest."""
        results: list = [None] * len(steps)
        queue = [(when, i) for i, when in enumerate(due or [0.0] * len(steps))]
        heapq.heapify(queue)
        running: dict[Future, int] = {}
        try:
            while queue or running:
                comfy.check_interrupt()
                now = time.monotonic()
                while queue and queue[0][0] <= now:
                    i = heapq.heappop(queue)[1]
                    running[submit(self.settings.max_in_flight, self._step, steps[i])] = i
                nap = min(engine.CANCEL_CHECK_SECONDS, queue[0][0] - now if queue else engine.CANCEL_CHECK_SECONDS)
                if not running:
                    time.sleep(nap)
                    continue
                for future in wait(running, timeout=nap, return_when=FIRST_COMPLETED).done:
                    i = running.pop(future)
                    err = future.exception()
                    if err is not None and (not isinstance(err, ThreeDLabsError) or fatal_ends and engine.fatal(err)):
                        raise err
                    outcome = err or future.result()
                    if isinstance(outcome, Again):
                        heapq.heappush(queue, (outcome.due, i))
                    else:
                        results[i] = outcome
        except BaseException:
            # Never wait for a worker stuck in a request (Cancel must not wait for a hanging server): the
            # stop flag ends it at its next wait, and what has not started never does.
            self._stop.set()
            for future in running:
                future.cancel()
            raise
        return results


class ProgressView:
    """Per-job progress as ComfyUI's bar and a status line on the node, and scene previews (any thread)."""

    def __init__(self, node_id: str | None, label: str) -> None:
        self.bar = comfy.NodeProgress(node_id)
        self.label = label
        self.job_ids: list[str] = []
        self.fractions: list[float] = []
        self.statuses: list[str] = []
        self.previews = 0
        self._started = self._last_text = 0.0
        self._lock = threading.Lock()

    def begin(self, job_ids: list[str]) -> None:
        self.job_ids = job_ids
        self.fractions = [0.0] * len(job_ids)
        self.statuses = ["queued"] * len(job_ids)
        self._started = time.monotonic()
        self.bar.text(f"{self.label}: waiting for {len(job_ids)} job{'s' if len(job_ids) != 1 else ''}")

    def __call__(self, index: int, job: Job) -> None:
        with self._lock:
            self.statuses[index] = job.status
            if job.status == "succeeded":
                self.fractions[index] = 1.0
            elif job.progress is not None:
                self.fractions[index] = max(self.fractions[index], job.progress)
            overall = sum(self.fractions) / len(self.fractions)
            now = time.monotonic()
            due = now - self._last_text >= TEXT_EVERY or job.done
            if due:
                self._last_text = now
        self.bar.update(overall)
        if not due:
            return
        tail = f"{overall * 100:.0f}% · {now - self._started:.0f} s"
        if len(self.job_ids) == 1:
            self.bar.text(f"{self.label}: job {self.job_ids[0]} {self.statuses[0]} · {tail}")
        else:
            done = sum(s == "succeeded" for s in self.statuses)
            running = sum(s == "running" for s in self.statuses)
            self.bar.text(f"{self.label}: {done}/{len(self.job_ids)} done, {running} running · {tail}")

    def preview(self, image) -> None:
        """Show one decoded scene image on the node as its job finishes (best effort, never raises)."""
        if image is None:
            return
        with self._lock:
            self.previews += 1
            done = self.previews
        comfy.preview(self.bar.node_id, image, done, len(self.job_ids))


def _raise_failures(outcomes: list) -> list[Job]:
    """Failed jobs first (the error itself, or a BatchError naming each), then the first other error in
    prompt order (a download, an unreadable result, a damaged image), each naming its job."""
    engine.raise_for_failures(outcomes)
    for outcome in outcomes:
        if isinstance(outcome, ThreeDLabsError):
            raise outcome
    return outcomes


def _raise_submit_errors(errors: list[tuple[int, ThreeDLabsError]], ids: list) -> None:
    if not errors:
        return
    first_i, first = errors[0]
    if len(ids) == 1 or isinstance(first, JobFailedError):
        raise first
    made = sum(1 for i in ids if i)
    more = f" ({len(errors)} items failed to submit)" if len(errors) > 1 else ""
    lost = isinstance(first, (MaybeSubmittedError, AnswerLostError))
    again = ("queueing again collects them and sends nothing that may have been paid for" if lost
             else "queue again to submit only what is missing")
    raise type(first)(
        f"{first.message.rstrip('.')}{more}. The {made} job(s) that were submitted are in the "
        f"journal; {again}",
        status=first.status, summary=f"Submitting item {first_i + 1} of {len(ids)} to 3DLabs failed.",
    )


def wait_jobs(start: Callable[[], list]) -> list:
    """The moment a run's jobs are all submitted and their waits begin: a named step, so that fault tests
    can change the world (revoke the token, stop the server) after the jobs are paid for."""
    return start()
