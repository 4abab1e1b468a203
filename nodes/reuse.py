"""Submit a node's jobs, or collect a paid result again instead of paying twice.

Every job-creating request gets a key: the API, the workspace, the endpoint, the exact body and the
node's seed. When the journal holds a succeeded job under the same key, its result is fetched by id
instead of submitting again, so a re-run after a restart, a cache eviction or a partly failed batch
only pays for what is missing. A job whose end was never seen (a crash, Cancel, a timeout, polling
that kept failing) is waited for again rather than paid for twice, and so is a paid job that cannot
be checked right now (a flaky connection is no reason to pay again). Only a job 3DLabs says failed
or does not know is submitted anew. The seed is part of the key, so a new seed asks for a new take.

3DLabs may answer 404 for a job in its first moments. So a job whose end nobody saw and that was
journaled less than the grace ago (``jobs.NOT_FOUND_GRACE_SECONDS``, counted from the journal's submit
time) is waited for on a 404, never replaced: the wait loop, which applies the same grace, decides
whether it is gone. Queue with wait off, then with wait on a second later, and one job is paid for.

Every check that can refuse runs before anything costs: the job cap is checked on the jobs that must
be paid for whatever the journal holds before any request, and reserved on the exact count before any
POST, so a list over the cap is refused before a thread, a request or a batch's memory exists.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import runtime
from .api import jobs as engine
from .api.errors import JobError, JobFailedError, NotFoundError, ThreeDLabsError
from .api.jobs import raise_for_failures
from .api.journal import UNFINISHED_STATES, request_hash
from .api.models import Job

if TYPE_CHECKING:  # the client (and requests) load on first use: keeps the pack's import fast
    from .api.client import ThreeDLabsClient

log = logging.getLogger("3dlabs")


def request_key(client: ThreeDLabsClient, endpoint: str, body: dict, seed) -> str:
    return request_hash(endpoint, {"body": body, "seed": seed, "api": client.settings.base_url,
                                   "workspace": client.settings.workspace_id})


def _reuse_enabled() -> bool:
    return os.environ.get("THREEDLABS_REUSE", "1").strip().lower() not in ("0", "false", "no", "off")


def find_reusable(client: ThreeDLabsClient, keys: list[str]) -> list[Job | None]:
    """Jobs already paid for under these keys: succeeded ones, and unfinished ones to wait for again.

    A slot holds a succeeded Job (reuse its result), an unfinished Job (wait for it by id), or None
    (submit): None only when the journal has no such job, or 3DLabs says it failed or no longer
    knows it (a job it does not know is journaled as gone, and the next paid one is tried).
    """
    found: list[Job | None] = [None] * len(keys)
    if not _reuse_enabled():
        return found
    for i, key in enumerate(keys):
        for _ in range(3):  # a job 3DLabs no longer knows is marked gone, and the next one is tried
            rec = client.journal.find_paid(key, base_url=client.settings.base_url,
                                           workspace=client.settings.workspace_id)
            if rec is None:
                break
            try:
                job = client.get_job(rec["id"])
            except NotFoundError as err:
                if _may_be_new(rec):
                    # Too young for a 404 to mean anything: wait for it (the wait loop applies the grace).
                    log.info("3DLabs: job %s is not visible yet (%s); waiting for it instead of paying again",
                             rec["id"], err.summary)
                    job = Job(rec["id"], "queued")
                    break
                log.info("3DLabs: cannot reuse job %s (%s)", rec["id"], err.summary)
                client.journal.record_state(rec["id"], "gone", error=err.detail)
                continue
            except ThreeDLabsError as err:
                # Paid for, but not checkable now: wait for it like a submitted job rather than pay again.
                log.info("3DLabs: cannot check job %s now (%s); waiting for it instead of paying again",
                         rec["id"], err.summary)
                job = Job(rec["id"], "queued")
            break
        else:
            rec = None
        if rec is None:
            continue
        if job.status in ("failed", "canceled"):
            client.journal.record_state(rec["id"], "failed", error=job.error)
            continue
        if job.status == "succeeded" and rec.get("state") != "succeeded":
            client.journal.record_state(rec["id"], "succeeded")
        job.id = job.id or rec["id"]
        found[i] = job
    return found


def _journaled_keys(client: ThreeDLabsClient) -> set[str]:
    """Request keys the journal holds a job for that find_paid could return: one pass over the file,
    so that the cap's first check stays quick for a long list and a long journal."""
    base_url, workspace = client.settings.base_url, client.settings.workspace_id
    return {rec.get("request") for rec in client.journal.jobs().values()
            if rec.get("base_url") == base_url and rec.get("workspace") == workspace
            and not rec["id"].startswith("unknown-") and rec.get("state") in ("succeeded", *UNFINISHED_STATES)}


def _journal_age(rec: dict) -> float | None:
    """Seconds since the journal recorded the job's submission; None when that cannot be told."""
    at = rec.get("submitted_at")
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        return None
    age = time.time() - float(at)
    return age if age >= 0 else None  # a submit time in the future: the wall clock moved back


def _may_be_new(rec: dict) -> bool:
    """Whether a 404 for this journaled job may only mean 3DLabs does not show it yet.

    Only a job nobody saw finish qualifies (a job seen succeeded was known to 3DLabs, so its 404 means
    it was forgotten), and only inside the grace, or when its age cannot be told: then the wait loop,
    starting the grace now, decides.
    """
    if rec.get("state") not in UNFINISHED_STATES:
        return False
    age = _journal_age(rec)
    return age is None or age < engine.NOT_FOUND_GRACE_SECONDS


def _created_at(client: ThreeDLabsClient, job_ids: list[str], reused: set[str]) -> list[float]:
    """Monotonic creation times for the wait loop's 404 grace: a reused job's comes from the journal,
    so a job submitted long ago gets no fresh grace; a job submitted just now was created now."""
    now_mono = time.monotonic()
    out = []
    for job_id in job_ids:
        age = _journal_age(client.journal.find(job_id) or {}) if job_id in reused else None
        out.append(now_mono - age if age is not None else now_mono)
    return out


def submit_all(client: ThreeDLabsClient, endpoint: str, kind: str, bodies: list[dict], keys: list[str],
               labels: list[str]) -> list[str | ThreeDLabsError]:
    """POST every body concurrently (bounded); a failed POST leaves an error in its slot."""
    def one(i: int):
        try:
            return client.submit(endpoint, kind, bodies[i], request_key=keys[i], label=labels[i])
        except ThreeDLabsError as err:
            return err

    if len(bodies) <= 1:
        return [one(i) for i in range(len(bodies))]
    with ThreadPoolExecutor(max_workers=min(len(bodies), client.settings.max_in_flight),
                            thread_name_prefix="3dlabs-submit") as pool:
        return list(pool.map(one, range(len(bodies))))


@dataclass
class JobPlan:
    """What a node will do for its bodies: reuse (``reused[i]`` a Job) or pay (``todo``), cap reserved."""

    kind: str
    endpoint: str
    bodies: list[dict]
    keys: list[str]
    labels: list[str]
    reused: list[Job | None]
    todo: list[int]


def plan_jobs(client: ThreeDLabsClient, node_label: str, kind: str, endpoint: str, bodies: list[dict], seed,
              labels: list[str] | None = None) -> JobPlan:
    """Look up what is paid for already and reserve the rest against the cap; refuse before any cost.

    The cap is first checked, with no request, on the bodies the journal has no paid job for: those
    are paid for whatever 3DLabs answers. Then the journaled ones are checked with 3DLabs, and the
    exact count to submit is reserved. Nothing here starts a thread or allocates a batch.
    """
    current = runtime.settings()
    keys = [request_key(client, endpoint, b, seed) for b in bodies]
    journaled = _journaled_keys(client) if _reuse_enabled() else set()
    known = sum(key in journaled for key in keys)
    runtime.check_jobs(len(bodies) - known, node_label, current)
    reused = find_reusable(client, keys)
    todo = [i for i, job in enumerate(reused) if job is None]
    runtime.reserve_jobs(len(todo), node_label, current)
    return JobPlan(kind, endpoint, bodies, keys, labels or [""] * len(bodies), reused, todo)


def collect_or_submit(client: ThreeDLabsClient, t: runtime.PromptTally, node_label: str, kind: str, endpoint: str,
                      bodies: list[dict], seed, *, node_id: str | None, timeout: float, wait: bool = True,
                      labels: list[str] | None = None,
                      on_done: Callable[[int, Job], None] | None = None) -> list[Job] | list[str]:
    """Jobs for ``bodies`` in order: reused where paid for already, else submitted (within the cap)."""
    plan = plan_jobs(client, node_label, kind, endpoint, bodies, seed, labels)
    return carry_out(client, t, plan, node_label, node_id=node_id, timeout=timeout, wait=wait, on_done=on_done)


def carry_out(client: ThreeDLabsClient, t: runtime.PromptTally, plan: JobPlan, node_label: str, *,
              node_id: str | None, timeout: float, wait: bool = True,
              on_done: Callable[[int, Job], None] | None = None) -> list[Job] | list[str]:
    """Submit what ``plan`` must pay for, then (with ``wait``) wait for every job not finished yet.

    With ``wait`` the finished jobs are returned (errors raised after every submitted job was waited
    for, so that nothing paid for is left uncollected); without it, the job ids. ``on_done`` is
    given each job, with its place in the bodies, as soon as it is known to have succeeded (reused
    ones before the wait begins).
    """
    bodies, reused, todo, kind = plan.bodies, plan.reused, plan.todo, plan.kind
    submitted = submit_all(client, plan.endpoint, kind, [bodies[i] for i in todo], [plan.keys[i] for i in todo],
                           [plan.labels[i] for i in todo])
    ids: list[str | None] = [job.id if job else None for job in reused]
    submit_errors: list[tuple[int, ThreeDLabsError]] = []
    for i, outcome in zip(todo, submitted):
        if isinstance(outcome, ThreeDLabsError):
            submit_errors.append((i, outcome))
        else:
            ids[i] = outcome
    n_reused = sum(job is not None for job in reused)
    runtime.record(t, submitted={kind: len(todo) - len(submit_errors)} if len(todo) > len(submit_errors) else None,
                   reused=n_reused)
    if n_reused:
        log.info("3DLabs: %s reused %d paid job%s instead of submitting again", node_label, n_reused,
                 "s" if n_reused != 1 else "")

    if not wait:
        if submit_errors:
            _raise_submit_errors(submit_errors, len(bodies), ids)
        return [i for i in ids if i]  # type: ignore[misc]

    done = [job if job is not None and job.status == "succeeded" else None for job in reused]
    live = [i for i in range(len(bodies)) if ids[i] is not None and done[i] is None]
    live_ids = [ids[i] for i in live]
    created = _created_at(client, live_ids, {job.id for job in reused if job is not None})  # type: ignore[arg-type]
    outcomes: dict[int, Job | JobError] = {i: done[i] for i in range(len(bodies)) if done[i] is not None}
    if on_done is not None:
        for i, job in outcomes.items():
            on_done(i, job)
    if live:
        place = {ids[i]: i for i in live}
        succeeded = None if on_done is None else (lambda job: on_done(place[job.id], job))
        waited = runtime.wait_jobs(client, live_ids, node_id=node_id, label=node_label,  # type: ignore[arg-type]
                                   timeout=timeout, created_at=created, raise_on_failure=False, on_done=succeeded)
        outcomes.update(zip(live, waited))
    ok = sum(isinstance(o, Job) for i, o in outcomes.items() if done[i] is None)
    failed = [(i, o) for i, o in sorted(outcomes.items()) if isinstance(o, JobError)]
    runtime.record(t, succeeded=ok, failed=len(failed))
    if submit_errors:
        _raise_submit_errors(submit_errors, len(bodies), ids)
    ordered = [outcomes[i] for i in range(len(bodies))]
    raise_for_failures(ordered)
    return ordered  # type: ignore[return-value]


def _raise_submit_errors(errors: list[tuple[int, ThreeDLabsError]], total: int, ids: list) -> None:
    if total == 1:
        raise errors[0][1]
    first_i, first = errors[0]
    made = sum(1 for i in ids if i)
    more = f" ({len(errors)} items failed to submit)" if len(errors) > 1 else ""
    raise type(first)(
        f"item {first_i + 1} of {total}: {first.message}{more}. The {made} job(s) that were submitted are in the "
        "journal; queue again to submit only what is missing",
        status=first.status, summary=f"Submitting item {first_i + 1} of {total} to 3DLabs failed.",
    ) if not isinstance(first, JobFailedError) else first
