"""The 3DLabs client: one object per settings, submitting jobs, reading them and their results.

Requests follow the published field names exactly; answers go through the tolerant readers. Each
job id is written to the journal the moment it is known, and a POST whose answer was lost as a job
"maybe submitted"; a request key is sent once at a time (``inflight``). Nothing here knows torch or ComfyUI.
"""

from __future__ import annotations

import logging
import secrets
import time

from . import inflight, readers, validation
from .auth import TokenProvider
from .config import Settings, journal_api, load_settings
from .download import DEADLINE_SECONDS_DEFAULT, MAX_BYTES_DEFAULT, fetch_image_bytes
from .errors import MaybeSubmittedError, MaybeSubmittedUnreadableError, ResponseFormatError, ValidationError
from .http import CancelCheck, HttpTransport, RetryPolicy
from .http_errors import server_words
from .journal import Journal
from .models import ImageRef, Job, Project, ScenePlan, Story, Workspace

log = logging.getLogger("3dlabs")


class ThreeDLabsClient:
    """``cancel_check`` (raises to abort; ComfyUI's interrupt check in the nodes) is the default for
    every call that can wait: retry sleeps, polling and image downloads. ``download_deadline`` is the
    most seconds one result image may take."""

    def __init__(self, settings: Settings | None = None, *, tokens: TokenProvider | None = None,
                 journal: Journal | None = None, retry: RetryPolicy | None = None,
                 cancel_check: CancelCheck | None = None) -> None:
        self.settings = settings or load_settings()
        self.tokens = tokens or TokenProvider(profile=self.settings.profile, base_url=self.settings.base_url)
        self.transport = HttpTransport(self.settings, self.tokens, retry=retry)
        self.journal = journal or Journal()
        self.cancel_check = cancel_check
        self.download_deadline = DEADLINE_SECONDS_DEFAULT

    def close(self) -> None:
        self.transport.close()

    def submit_once(self, endpoint: str, kind: str, body: dict, *, workspace_id: str | None = None,
                    request_key: str | None = None, label: str = "", cancel_check: CancelCheck | None = None,
                    once: bool = True) -> inflight.Submission:
        """POST one job-creating request (body already validated), journal its job id, and tell whether
        this call paid. With a ``request_key`` (and ``once``) the key is sent once at a time per user
        directory: a caller arriving while it is in flight gets that job, and a key whose answer was lost
        is refused (AnswerLostError) instead of being paid for again."""
        ws = workspace_id or self.settings.workspace_id
        cancel_check = cancel_check or self.cancel_check
        fields = dict(endpoint=endpoint, body=body, profile=self.settings.profile, workspace=ws,
                      base_url=journal_api(self.settings), request_key=request_key)

        def post(idempotency_key: str) -> str:
            return self._post(endpoint, kind, body, ws, idempotency_key, label, fields, cancel_check)

        if request_key is None or not once:
            return inflight.Submission(post(inflight.fresh_key()), paid=True)
        return inflight.submit_once(self.journal, request_key, post,
                                    lambda why: self._record_lost(kind, label, why, fields),
                                    base_url=fields["base_url"], workspace=ws, ttl=self.post_seconds(),
                                    cancel_check=cancel_check)

    def post_seconds(self) -> float:
        """The longest one job-creating POST may take, retries included: a claim older than this is lost."""
        retry, s = self.transport.retry, self.settings
        return retry.max_attempts * (s.connect_timeout + s.read_timeout) + retry.max_total_seconds

    def _post(self, endpoint, kind, body, ws, idempotency_key, label, fields, cancel_check) -> str:
        try:
            answer = self.transport.post_job(endpoint, body, workspace_id=ws, cancel_check=cancel_check,
                                             idempotency_key=idempotency_key)
            try:
                job_id = readers.read_job_id(answer)
            except ResponseFormatError as err:
                # The server took the request (and perhaps the money); say so instead of re-sending.
                said = server_words(answer)
                raise MaybeSubmittedUnreadableError(f"POST {endpoint} answered without a readable job id "
                                                    f"({err.detail})" + (f"; the server said: {said}" if said else "")
                                                    ) from None
        except MaybeSubmittedError as err:
            self._record_lost(kind, label, err.detail, fields)
            raise
        self.journal.record_submitted(job_id, kind, label=label, **fields)
        log.info("3DLabs: submitted %s job %s", kind, job_id)
        return job_id

    def _record_lost(self, kind: str, label: str, why: str, fields: dict) -> dict:
        """Journal a request whose answer was lost: Recent Jobs lists it, the same inputs are refused."""
        job_id = f"unknown-{int(time.time() * 1000)}-{secrets.token_hex(3)}"
        self.journal.record_submitted(job_id, kind, label=f"answer lost: {label}", lost=why, **fields)
        return self.journal.find(job_id) or {"id": job_id, "kind": kind, "label": label, "error": why}

    def get_job(self, job_id: str, *, workspace_id=None, cancel_check: CancelCheck | None = None) -> Job:
        answer = self.transport.get_json(f"jobs/{validation.optional_id('job_id', job_id)}",
                                         workspace_id=workspace_id, cancel_check=cancel_check or self.cancel_check)
        return readers.read_job(answer, job_id)

    def list_workspaces(self) -> list[Workspace]:
        return readers.read_workspaces(self.transport.get_json("workspaces"))

    def list_projects(self, *, workspace_id=None) -> list[Project]:
        return readers.read_sessions(self.transport.get_json("session/list", workspace_id=workspace_id))

    def get_project(self, project_id: str, *, workspace_id=None) -> Project:
        pid = validation.optional_id("project_id", project_id)
        if not pid:
            raise ValidationError("project_id is empty: pick a project.")
        return readers.read_session(self.transport.get_json(f"session/{pid}", workspace_id=workspace_id), pid)

    @staticmethod
    def story_of(job: Job) -> Story:
        return _read_result(readers.read_story, job)

    @staticmethod
    def scene_plan_of(job: Job) -> ScenePlan:
        return _read_result(readers.read_scene_plan, job)

    @staticmethod
    def image_refs_of(job: Job) -> list[ImageRef]:
        return _read_result(readers.read_image_refs, job)

    def fetch_image(self, ref: ImageRef, *, max_bytes: int = MAX_BYTES_DEFAULT, job_id: str | None = None,
                    cancel_check: CancelCheck | None = None) -> bytes:
        """One result image's bytes; errors name ``job_id`` (the paid job) when given."""
        return fetch_image_bytes(ref, self.transport, max_bytes=max_bytes, deadline=self.download_deadline,
                                 cancel_check=cancel_check or self.cancel_check, job_id=job_id)


def _read_result(reader, job: Job):
    """A finished job's result through ``reader``; an unreadable one names the (paid) job."""
    try:
        return reader(job.result)
    except ResponseFormatError as err:
        raise ResponseFormatError(f"the result of job {job.id}: {err.detail}", status=err.status,
                                  job_id=job.id or None) from None
