"""What a node must pay for: jobs paid for already are collected again instead of paid twice.

Every job-creating request gets a key: the API (the bundled sandbox by its name, since its port changes
at every start), the workspace, the endpoint, the exact body and the node's seed (a new seed asks for a
new take). A succeeded job under the key is reused; one whose end nobody saw (a crash, Cancel, a
timeout, failing polls), or that cannot be checked now, is waited for again. Only a job 3DLabs says
failed or does not know is submitted anew; a 404 inside the grace for new jobs
(``jobs.NOT_FOUND_GRACE_SECONDS``, counted from the journal's submit time) is waited for. A key whose
answer was lost (the job may exist, its id is unknown) is refused before anything is spent: paying
again needs new inputs (a new seed).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import spend
from .api import budget, inflight
from .api import jobs as engine
from .api.config import Settings, journal_api
from .api.errors import AnswerLostError, NotFoundError, ThreeDLabsError
from .api.journal import UNFINISHED_STATES, request_hash
from .api.models import Job
from .spend import PromptTally

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

log = logging.getLogger("3dlabs")


def request_key(client: ThreeDLabsClient, endpoint: str, body: dict, seed) -> str:
    return request_hash(endpoint, {"body": body, "seed": seed, "api": journal_api(client.settings),
                                   "workspace": client.settings.workspace_id})


def _paid(client: ThreeDLabsClient, key: str) -> dict | None:
    return client.journal.find_paid(key, base_url=journal_api(client.settings), workspace=client.settings.workspace_id)


def _journal_age(rec: dict) -> float | None:
    """Seconds since the journal recorded the job's submission; None when that cannot be told."""
    at = rec.get("submitted_at")
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return None
    age = time.time() - float(at)
    return age if age >= 0 else None  # a submit time in the future: the wall clock moved back


def _reusable(client: ThreeDLabsClient, key: str) -> Job | None:
    """The job already paid for under ``key``: a succeeded Job (reuse its result) or an unfinished one
    (wait for it by id). None (submit) only when the journal has no such job, or 3DLabs says it failed
    or no longer knows it."""
    for _ in range(3):  # a job 3DLabs no longer knows is journaled as gone, and the next one is tried
        rec = _paid(client, key)
        if rec is None:
            return None
        try:
            job = client.get_job(rec["id"])
        except NotFoundError as err:
            # A 404 may only mean 3DLabs does not show the job yet: for a job nobody saw finish (one seen
            # succeeded was known to 3DLabs, so its 404 means it was forgotten), inside the grace or when
            # its age cannot be told. Then it is waited for, and the wait loop applies the grace.
            age = _journal_age(rec)
            if rec.get("state") in UNFINISHED_STATES and (age is None or age < engine.NOT_FOUND_GRACE_SECONDS):
                log.info("3DLabs: job %s is not visible yet (%s); waiting for it instead of paying again",
                         rec["id"], err.summary)
                return Job(rec["id"], "queued")
            log.info("3DLabs: cannot reuse job %s (%s)", rec["id"], err.summary)
            client.journal.record_state(rec["id"], "gone", error=err.detail)
            continue
        except ThreeDLabsError as err:
            # Paid for, but not checkable now: wait for it like a submitted job rather than pay again.
            log.info("3DLabs: cannot check job %s now (%s); waiting for it instead of paying again",
                     rec["id"], err.summary)
            return Job(rec["id"], "queued")
        if job.status in ("failed", "canceled"):
            client.journal.record_state(rec["id"], "failed", error=job.error)
            return None
        if job.status == "succeeded" and rec.get("state") != "succeeded":
            client.journal.record_state(rec["id"], "succeeded")
        job.id = job.id or rec["id"]
        return job
    return None


def created_at(client: ThreeDLabsClient, job: Job | None) -> float:
    """Monotonic creation time for the wait's 404 grace: a reused job's comes from the journal, so a job
    submitted long ago gets no fresh grace; a job submitted just now (``job`` None) was created now."""
    age = _journal_age(client.journal.find(job.id) or {}) if job is not None else None
    return time.monotonic() - (age or 0.0)


@dataclass
class JobPlan:
    """What a node will do for its bodies: reuse (``reused[i]`` a Job) or pay (``todo``), cap reserved."""

    keys: list[str]
    reused: list[Job | None]
    todo: list[int]
    reuse: bool = True  # THREEDLABS_REUSE: off, every run pays (no reuse, no waiting for the same key)
    hold: budget.Hold | None = None  # the todo jobs held against the spend budget until their POSTs end


def plan_jobs(client: ThreeDLabsClient, t: PromptTally, current: Settings, node_label: str, kind: str,
              endpoint: str, bodies: list[dict], seed, labels: list[str]) -> JobPlan:
    """Look up what is paid for already and reserve the rest against the cap; refuse before any cost.

    The cap is first checked, with no request, on the bodies the journal has no paid job for: those
    are paid for whatever 3DLabs answers. Then the journaled ones are checked with 3DLabs, and the
    exact count to submit is reserved against the cap and held against the spend budget (the caller
    releases the hold once the POSTs ended). Nothing here starts a thread or allocates a batch.
    """
    keys = [request_key(client, endpoint, b, seed) for b in bodies]
    reuse = os.environ.get("THREEDLABS_REUSE", "1").strip().lower() not in ("0", "false", "no", "off")
    paid = [_paid(client, key) if reuse else None for key in keys]
    spend.reserve(t, len(bodies) - sum(rec is not None for rec in paid), node_label, current, keep=False)
    if reuse:
        _refuse_lost(client, node_label, [(i, key) for i, (key, rec) in enumerate(zip(keys, paid)) if rec is None],
                     len(keys))
    reused = [_reusable(client, key) if reuse else None for key in keys]
    todo = [i for i, job in enumerate(reused) if job is None]
    spend.reserve(t, len(todo), node_label, current)
    # Across prompts too: the rolling hour's and day's jobs, from the journal (refused before any POST).
    limits = {"hour": current.max_jobs_per_hour, "day": current.max_jobs_per_day}
    hold = budget.reserve(client.journal, len(todo), limits, node_label)
    return JobPlan(keys, reused, todo, reuse, hold)


def _refuse_lost(client: ThreeDLabsClient, node_label: str, keys: list[tuple[int, str]], total: int) -> None:
    """AnswerLostError naming every item of ``keys`` (those with nothing paid) whose last POST lost its answer."""
    api, ws = journal_api(client.settings), client.settings.workspace_id
    lost = [(i, rec) for i, key in keys
            if (rec := inflight.find_lost(client.journal, key, base_url=api, workspace=ws)) is not None]
    if not lost:
        return
    items = "; ".join((f"item {i + 1} of {total}: " if total > 1 else "") + inflight.lost_detail(rec)
                      for i, rec in lost[:5])
    more = f"; and {len(lost) - 5} more" if len(lost) > 5 else ""
    raise AnswerLostError(f"{node_label}: {items}{more}")
