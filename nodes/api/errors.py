"""Every typed error of the pack, in one place.

Each error renders as one plain sentence (what went wrong, for a ComfyUI user) followed by the
detail (the server's own words, a job id, a hint). Messages pass through :func:`redact` so that a
token can never reach the UI, a log or ComfyUI's history through an exception.
"""

from __future__ import annotations

import re

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_KEYLIKE = re.compile(r"(?i)\b(sk|pk|key|token|tdl)[-_][A-Za-z0-9_-]{12,}")

# Secrets registered at run time (the token in use); redact() removes them wherever they appear.
_known_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret so that every later error message and log line masks it."""
    if secret and len(secret) >= 6:
        _known_secrets.add(secret)


def redact(text: object) -> str:
    """Return ``text`` as a string with every known or token-shaped secret masked."""
    out = str(text)
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, "***")
    out = _BEARER.sub(r"\1***", out)
    out = _JWT.sub("***", out)
    return _KEYLIKE.sub("***", out)


class ThreeDLabsError(Exception):
    """Base of every error the pack raises on purpose."""

    summary = "The 3DLabs request failed."
    default_hint = ""  # what to do about it, unless the raiser knows better

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        job_id: str | None = None,
        hint: str | None = None,
        summary: str | None = None,
    ) -> None:
        self.detail = redact(detail).strip()
        self.status = status
        self.job_id = job_id
        self.hint = redact(self.default_hint if hint is None else hint).strip()
        if summary:
            self.summary = redact(summary)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.summary]
        if self.detail:
            parts.append(self.detail if self.detail.endswith(".") else self.detail + ".")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)

    def __str__(self) -> str:
        return self.message


# --- configuration and user input (raised before anything is spent) -------------------------


class ConfigError(ThreeDLabsError):
    summary = "The 3DLabs configuration is not usable."


class ValidationError(ThreeDLabsError):
    summary = "The node's input is not valid; nothing was submitted."


class JobCapError(ValidationError):
    summary = "This prompt would submit more 3DLabs jobs than the cap allows; nothing was submitted."


# --- answers from the API --------------------------------------------------------------------


class APIError(ThreeDLabsError):
    """An HTTP answer from the 3DLabs API that is not a success."""


class AuthError(APIError):
    summary = "3DLabs did not accept the token (sign-in required or token expired)."


class ForbiddenError(APIError):
    summary = "3DLabs refused access: the token lacks permission or the workspace is wrong."


class NotFoundError(APIError):
    summary = "3DLabs has no such resource."


class InvalidRequestError(APIError):
    summary = "3DLabs rejected the request as invalid."


class RateLimitedError(APIError):
    summary = "3DLabs is rate limiting this account; try again shortly."

    def __init__(self, detail: str = "", *, retry_after: float | None = None, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(detail, **kw)


class OutOfCreditsError(APIError):
    summary = "The 3DLabs account is out of credits (HTTP 402); top up or switch workspace."


class ServerError(APIError):
    summary = "3DLabs had a server error."


class ResponseFormatError(APIError):
    summary = "3DLabs answered with something the client cannot read."


# --- the network -----------------------------------------------------------------------------


class NetworkError(ThreeDLabsError):
    summary = "Could not reach 3DLabs."
    default_hint = (
        "Check THREEDLABS_BASE_URL, and HTTPS_PROXY / REQUESTS_CA_BUNDLE if you are behind a "
        "proxy or a TLS-inspecting firewall."
    )


class MaybeSubmittedError(NetworkError):
    """A job-creating POST was sent but its answer was lost: the job may exist and cost credits."""

    summary = "The connection to 3DLabs broke after the request was sent, so the job may exist."
    default_hint = (
        "It was not re-sent, to avoid paying twice. Look for it with the 3DLabs Recent Jobs node "
        "or in your 3DLabs project, and collect it with Job Wait."
    )


# --- jobs ------------------------------------------------------------------------------------


class JobError(ThreeDLabsError):
    """A job-level failure; carries the job id and, for batches, the job's index."""

    def __init__(self, detail: str = "", *, index: int | None = None, **kw) -> None:
        self.index = index
        super().__init__(detail, **kw)

    @property
    def message(self) -> str:
        where = ""
        if self.job_id:
            where = f" (job {self.job_id}" + (f", item {self.index + 1}" if self.index is not None else "") + ")"
        base = self.summary.rstrip(".") + where + "."
        rest = [p for p in (self.detail, self.hint) if p]
        return " ".join([base, *(p if p.endswith(".") else p + "." for p in rest)])


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

    summary = "Some 3DLabs jobs of this batch failed."

    def __init__(self, failures: list[JobError], results: list, **kw) -> None:
        self.failures = failures
        self.results = results
        detail = "; ".join(f.message for f in failures[:5])
        if len(failures) > 5:
            detail += f"; and {len(failures) - 5} more"
        kw.setdefault("summary", f"{len(failures)} of {len(results)} 3DLabs jobs failed.")
        super().__init__(detail, **kw)


# --- images ----------------------------------------------------------------------------------


class ImageError(ThreeDLabsError):
    summary = "A 3DLabs result image could not be used."


class ImageDownloadError(ImageError):
    summary = "A 3DLabs result image could not be downloaded."


class ImageTooLargeError(ImageError):
    summary = "A 3DLabs result image is larger than the allowed limit."


class ImageDecodeError(ImageError):
    summary = "A 3DLabs result image could not be decoded."
