"""A stand-in for the 3DLabs client where HTTP adds nothing: scripted jobs, counted calls, real journal.

A job's behaviour follows words in its prompt: ``FAIL`` fails, ``HANG`` never ends (and with
``BLOCK`` its status request itself hangs), ``POLLS=n`` ends after n polls (default 2), ``BROKEN``
gives bytes that are no image, ``NOSUBMIT`` makes the POST fail. Each image is a solid colour picked
by the job's place in the order of submission, so a test can tell which image landed in which slot.
Workers submit concurrently, so that order is not the prompt order: tests name a job by its prompt
(``id_of``), never by its number.
"""

from __future__ import annotations

import re
import threading

from fixtures_images import png

from conftest import pack_module

errors = pack_module("nodes.api.errors")
models = pack_module("nodes.api.models")
Journal = pack_module("nodes.api.journal").Journal
inflight = pack_module("nodes.api.inflight")
clients = pack_module("nodes.clients")


def colour(n: int) -> tuple[int, int, int]:
    return (n * 37 % 256, 255 - n * 23 % 256, n * 11 % 256)


class FakeClient:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.journal = Journal()
        self.lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self.posts: list[dict] = []
        self.polls: dict[str, int] = {}
        self.fetches: list[str] = []
        self.finished: list[str] = []  # job ids in the order they were seen finished
        self.release = threading.Event()  # lets BLOCKed status requests go

    # -- submitting --------------------------------------------------------------------------

    def submit_once(self, endpoint, kind, body, *, request_key=None, label="", cancel_check=None, once=True):
        """What the node runner calls: every fake POST pays (the real gate is tested over HTTP)."""
        text = str(body.get("prompt") or body.get("topic") or "")
        if "NOSUBMIT" in text:
            raise errors.ServerError("the server said no (HTTP 500)", status=500)
        with self.lock:
            n = len(self.posts)
            job_id = f"job_{n:04d}"
            self.posts.append(body)
            polls = re.search(r"POLLS=(\d+)", text)
            self.jobs[job_id] = {"n": n, "kind": kind, "text": text, "polls": int(polls.group(1)) if polls else 2}
        self.journal.record_submitted(job_id, kind, endpoint=endpoint, body=body, base_url=self.settings.base_url,
                                      workspace=self.settings.workspace_id, label=label, request_key=request_key)
        return inflight.Submission(job_id, paid=True)

    def id_of(self, text: str) -> str:
        """The id of the one job submitted with this prompt (or topic)."""
        found = [job_id for job_id, spec in self.jobs.items() if spec["text"] == text]
        assert len(found) == 1, f"{len(found)} jobs were submitted for {text!r}"
        return found[0]

    def colour_of(self, text: str) -> tuple[int, int, int]:
        return colour(self.jobs[self.id_of(text)]["n"])

    # -- reading -----------------------------------------------------------------------------

    def get_job(self, job_id, *, cancel_check=None, workspace_id=None):
        spec = self.jobs.get(job_id)
        if spec is None:
            raise errors.NotFoundError("Job not found (HTTP 404)", status=404)
        if "BLOCK" in spec["text"]:
            self.release.wait()  # a status request that hangs, as a stuck server would
        with self.lock:
            polls = self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if "HANG" in spec["text"] or polls < spec["polls"]:
            return models.Job(job_id, "running", progress=min(0.9, polls / spec["polls"]))
        with self.lock:
            if job_id not in self.finished:
                self.finished.append(job_id)
        if "FAIL" in spec["text"]:
            return models.Job(job_id, "failed", error=f"model refused {spec['text']!r}")
        result = {"imageUrl": f"https://cdn.example/{job_id}.png"} if spec["kind"] == "image" else {
            "title": spec["text"], "scenes": [{"sceneNumber": 1, "imagePrompt": "a kite"}]}
        return models.Job(job_id, "succeeded", progress=1.0, result=result)

    @staticmethod
    def image_refs_of(job):
        url = (job.result or {}).get("imageUrl")
        if not url:
            raise errors.ResponseFormatError(f"the result of job {job.id}: no image", job_id=job.id)
        return [models.ImageRef("url", url)]

    def fetch_image(self, ref, *, job_id=None, cancel_check=None, max_bytes=None):
        with self.lock:
            self.fetches.append(job_id)
        spec = self.jobs[job_id]
        return b"<html>sign in</html>" if "BROKEN" in spec["text"] else png(colour(spec["n"]), (64, 36))

    def story_of(self, job):
        return pack_module("nodes.api.readers").read_story(job.result)

    def scene_plan_of(self, job):
        return pack_module("nodes.api.readers").read_scene_plan(job.result)


class ScriptClient:
    """What a node run asks of its client to wait for jobs, and no more: their status (``get_job(job_id)``,
    a script) and a journal."""

    def __init__(self, get_job) -> None:
        self.script = get_job
        self.journal = Journal()

    def get_job(self, job_id, *, cancel_check=None):
        return self.script(job_id)


def install(monkeypatch) -> FakeClient:
    """Point every node at one FakeClient (settings as the environment gives them)."""
    fake = FakeClient(clients.settings())
    monkeypatch.setattr(clients, "client_for", lambda current=None: fake)
    return fake
