"""Every typed error of the pack.

An error renders as one plain sentence for a ComfyUI user (``summary``) followed by the detail (the
server's own words, a job id) and a hint. Everything passes through redaction.redact, so that a token never
reaches the UI, a log or ComfyUI's history. ``http_status`` is what the pack's routes answer with.
"""

from __future__ import annotations

from .redaction import redact

# ComfyUI names a node's error type `__module__ + "." + __qualname__` in its error panel, and a custom
# pack's module is named after its folder path: a short stable name reads better. Nothing imports these
# classes by module name (ComfyUI sends the type as text only); pickling goes by name (__reduce__).
ERROR_MODULE = "3DLabs"


class ThreeDLabsError(Exception):
    """Base of every error the pack raises on purpose."""

    __module__ = ERROR_MODULE  # subclasses get it from __init_subclass__
    summary = "The 3DLabs request failed."
    default_hint = ""  # what to do about it, unless the raiser knows better
    http_status = 502  # the routes act as a proxy of 3DLabs: a bad gateway unless a subclass knows better

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__module__ = ERROR_MODULE

    def __init__(self, detail: str = "", *, status: int | None = None, job_id: str | None = None,
                 hint: str | None = None, summary: str | None = None) -> None:
        self.detail = redact(detail).strip()
        self.status = status
        self.job_id = job_id
        self.hint = redact(self.default_hint if hint is None else hint).strip()
        if summary:
            self.summary = redact(summary)
        super().__init__(self.message)

    @property
    def headline(self) -> str:
        return self.summary

    @property
    def message(self) -> str:
        out: list[str] = []
        for part in (self.headline, self.detail, self.hint):
            # Each thing once: a part that only restates an earlier one is left out.
            if part and part.rstrip(".").casefold() not in (p.rstrip(".").casefold() for p in out):
                out.append(part if part.endswith(".") else part + ".")
        return " ".join(out)

    def __str__(self) -> str:  # built when shown: a job id or item number set after raising still appears
        return self.message

    def __reduce__(self):
        # By name within this module: pickle cannot import the classes' short module name ("3DLabs").
        return _rebuild, (type(self).__name__, self.__dict__.copy())


def _rebuild(name: str, state: dict) -> ThreeDLabsError:
    cls = globals().get(name)
    if not (isinstance(cls, type) and issubclass(cls, ThreeDLabsError)):
        cls = ThreeDLabsError  # a subclass made elsewhere: its message survives, as the pack's base error
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err.message)
    return err


# --- configuration and user input (raised before anything is spent)
class ConfigError(ThreeDLabsError):
    summary = "The 3DLabs configuration is not usable."
    http_status = 400


class ValidationError(ThreeDLabsError):
    summary = "The node's input is not valid; nothing was submitted."
    http_status = 400


class JobCapError(ValidationError):
    summary = "This node would pass the 3DLabs job cap for this prompt, so it submitted nothing."


class SpendBudgetError(JobCapError):
    summary = "This node would pass the 3DLabs spend budget (jobs per hour or per day), so it submitted nothing."


# --- answers from the API that are not a success
class APIError(ThreeDLabsError):
    """An HTTP answer from the 3DLabs API that is not a success."""


class AuthError(APIError):
    summary = "3DLabs did not accept the token (sign-in required or token expired)."
    http_status = 401


class ForbiddenError(APIError):
    summary = "3DLabs refused access: the token lacks permission or the workspace is wrong."
    http_status = 403


class NotFoundError(APIError):
    summary = "3DLabs has no such resource."
    http_status = 404


class InvalidRequestError(APIError):
    summary = "3DLabs rejected the request as invalid."


class RateLimitedError(APIError):
    summary = "3DLabs is rate limiting this account; try again shortly."
    http_status = 429

    def __init__(self, detail: str = "", *, retry_after: float | None = None, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(detail, **kw)


class OutOfCreditsError(APIError):
    summary = "The 3DLabs account is out of credits (HTTP 402); top up or switch workspace."
    http_status = 402


class ServerError(APIError):
    summary = "3DLabs had a server error."


class ResponseFormatError(APIError):
    summary = "3DLabs answered with something the client cannot read."


# --- the network
class NetworkError(ThreeDLabsError):
    summary = "Could not reach 3DLabs."
    http_status = 504
    default_hint = ("Check THREEDLABS_BASE_URL, and HTTPS_PROXY / REQUESTS_CA_BUNDLE if you are behind a "
                    "proxy or a TLS-inspecting firewall.")


class MaybeSubmittedError(NetworkError):
    """A job-creating POST was sent but its answer was lost: the job may exist and cost credits."""

    summary = "The connection to 3DLabs broke after the request was sent, so the job may exist."
    default_hint = ("It was not re-sent, to avoid paying twice, and queueing the same inputs again will not send it "
                    "either. Look for it in the 3DLabs app or with the 3DLabs Recent Jobs node, and collect it with "
                    "Job Wait; to pay for a new job instead, change the node's seed.")


class MaybeSubmittedServerError(MaybeSubmittedError, ServerError):
    """A job-creating POST answered with a 5xx: a proxy may have refused it, or the app may have made
    the job and failed afterwards; nothing proves which, so it is never re-sent."""

    summary = "3DLabs answered the job request with a server error, so the job may exist (or may not)."
    default_hint = ("It was not re-sent, to avoid paying twice, and queueing the same inputs again will not send it "
                    "either. In a minute, look for it in the 3DLabs app or with the 3DLabs Recent Jobs node and "
                    "collect it with Job Wait; if it is not there, change the node's seed and queue again.")


class MaybeSubmittedUnreadableError(MaybeSubmittedError, ResponseFormatError):
    """A job-creating POST was answered, but not readably (size, object count, nesting, charset, JSON,
    no job id): the job was probably made and its id is unknown."""

    summary = "3DLabs answered the job request with something the client cannot read, so the job may exist."


class AnswerLostError(ThreeDLabsError):
    """Queued again: the same request went out before and its answer was lost (journaled as maybe
    submitted), or the process sending it ended mid-way. Refused before anything is sent."""

    summary = ("These exact inputs were sent to 3DLabs before and the answer was lost, so that job may exist "
               "and be paid for; nothing was sent again.")
    default_hint = ("Look for it in the 3DLabs app (your project's recent jobs) or with the 3DLabs Recent Jobs node, "
                    "where it is listed as \"answer lost\"; collect it by id with 3DLabs Job Wait. To pay for a "
                    "new job instead, change the node's seed and queue again.")
    http_status = 409


# --- jobs
class JobError(ThreeDLabsError):
    """A job-level failure; carries the job id and, for batches, the job's index."""

    def __init__(self, detail: str = "", *, index: int | None = None, **kw) -> None:
        self.index = index
        super().__init__(detail, **kw)

    @property
    def headline(self) -> str:
        if not self.job_id:
            return self.summary
        item = f", item {self.index + 1}" if self.index is not None else ""
        return f"{self.summary.rstrip('.')} (job {self.job_id}{item})"


class JobFailedError(JobError):
    summary = "The 3DLabs job failed"


class JobCanceledError(JobError):
    summary = "The 3DLabs job was canceled on the server"


class JobTimeoutError(JobError):
    summary = "The 3DLabs job did not finish in time"
    default_hint = ("It may still be running, and it is paid for: collect it later with the 3DLabs Job Wait node, or "
                    "queue the prompt again to go on waiting for it. To give up on it and pay for a new job "
                    "instead, change the seed of the node that made it.")


class JobStatusUnknownError(JobError):
    """Polling kept failing (network, 5xx, unreadable answers): the job's fate is unknown, not failed."""

    summary = "Could not get the 3DLabs job's status"
    default_hint = ("The job may still be running and is paid for: collect it with the 3DLabs Job Wait node, "
                    "or queue again with the same inputs (it is resumed, not paid for twice).")


class BatchError(ThreeDLabsError):
    """Some jobs of a batch failed; the results of the others are kept in ``results``."""

    def __init__(self, failures: list[JobError], results: list, **kw) -> None:
        self.failures = failures
        self.results = results
        detail = "; ".join(f.message for f in failures[:5])
        if len(failures) > 5:
            detail += f"; and {len(failures) - 5} more"
        kw.setdefault("summary", f"{len(failures)} of {len(results)} 3DLabs jobs failed.")
        super().__init__(detail, **kw)


# --- images
class ImageError(ThreeDLabsError):
    summary = "A 3DLabs result image could not be used."


class ImageDownloadError(ImageError):
    summary = "A 3DLabs result image could not be downloaded."


class ImageTooLargeError(ImageError):
    summary = "A 3DLabs result image is larger than the allowed limit."


class ImageDecodeError(ImageError):
    summary = "A 3DLabs result image could not be decoded."


class PixelBudgetError(ImageError):
    summary = "The 3DLabs images would pass the budget of decoded pixels, so no more were downloaded or decoded."
