"""One requests Session per client: the token, the one retry policy, capped reads, HTTP error mapping.

Retries (of API calls and image downloads) are not urllib3's ``Retry``, which sleeps past Cancel and
cannot tell a POST that never reached the application from one whose answer was lost. A GET is
repeated after connection errors, 429, 502, 503, 504 and unreadable bodies; a job-creating POST only
after a refusal before sending or a 429: a 5xx or anything after sending may hide a job, so it is a
MaybeSubmittedError. Whether a request reached the server is read from the exception's types (a failure
to connect), never from its text. Every job-creating POST carries an ``Idempotency-Key``. JSON answers are
capped in bytes and in objects and arrays; an answer to a POST that cannot be read is a
MaybeSubmittedUnreadableError. :class:`ApiAuth` gives the token only to the API's origin as the sending library
connects, and refreshes a command-made one after a 401. Redirects are never followed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import re
import ssl
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests import exceptions as rexc
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, MaxRetryError, NewConnectionError
from urllib3.util import parse_url

from .auth import TokenProvider
from .config import DEFAULT_BASE_URL, Settings
from .errors import (
    AuthError,
    MaybeSubmittedError,
    MaybeSubmittedServerError,
    MaybeSubmittedUnreadableError,
    NetworkError,
    ResponseFormatError,
)
from .http_errors import error_for_response, looks_like_sign_in, parse_retry_after, refused_token
from .jobs import sleep_unless_canceled
from .redaction import redact
from .version import USER_AGENT

log = logging.getLogger("3dlabs")

MAX_JSON_BYTES = 32 * 1024 * 1024  # the largest JSON answer read; a 400 MB one must not take the machine
# Objects and arrays in one JSON answer: a whole project is a few thousand; 32 MiB of `{},` would be 11 million
# (0.84 GB once parsed). Counted on the text before it is parsed.
MAX_JSON_CONTAINERS = 250_000
MAX_ERROR_BODY_BYTES = 64 * 1024  # of an error answer only the server's message is read
DEFAULT_PORTS = {"http": 80, "https": 443}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Only a 429 says no job was made: a 503 may come from the app after it made one, and a proxy's 502,
# 503 or 504 proves nothing about what happened behind it.
POST_SAFE_STATUSES = frozenset({429})
CancelCheck = Callable[[], None]
# A web page where the API should answer is most often a base URL that names the website (or a path
# the API does not have), or a proxy answering in the API's place; no job id came back either way.
_HTML_HINT = ("Check the base URL (THREEDLABS_BASE_URL or the 3DLabs settings): it must name the API, as in "
              f"{DEFAULT_BASE_URL}, not the website. A proxy or captive portal can also answer with a page.")


class Retryable(Exception):
    """Raised by one attempt whose ``error`` may be tried again (after ``retry_after`` s if the server said)."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    max_total_seconds: float = 30.0
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        # Full jitter: spreads retries of many concurrent pollers instead of synchronising them.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))

    def run(self, attempt: Callable[[], object], *, cancel_check: CancelCheck | None = None,
            time_left: Callable[[], float] = lambda: math.inf, what: str = "request"):
        """``attempt()`` until it does not raise :class:`Retryable`; its last error after ``max_attempts``,
        or when the next sleep would pass ``max_total_seconds`` or ``time_left()`` (the caller's deadline)."""
        started = time.monotonic()
        for tries in itertools.count(1):
            try:
                return attempt()
            except Retryable as r:
                delay = self.delay(tries - 1, r.retry_after)
                budget = min(self.max_total_seconds - (time.monotonic() - started), time_left())
                if tries >= self.max_attempts or delay >= budget:
                    raise r.error from None
                log.debug("3DLabs: %s failed (%s); retry %d in %.2fs", what, type(r.error).__name__, tries, delay)
                sleep_unless_canceled(delay, cancel_check)


def connect_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) the sending library connects to for ``url``; None if its two parsers (urllib3
    prepares the URL, the adapter keys connections by urllib.parse) do not agree: nobody's to trust."""
    try:
        ours = parse_url(url)
        theirs = urlsplit(url)
        their_host, their_port = (theirs.hostname or "").lower(), theirs.port
    except (LocationParseError, ValueError):
        return None
    if not their_host.isascii():  # urllib3 sends an international host name IDNA-encoded
        try:
            their_host = their_host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    scheme = (ours.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not ours.host or ours.auth or theirs.username is not None:
        return None
    host = ours.host.lower().strip("[]")
    port = ours.port or DEFAULT_PORTS[scheme]
    if (theirs.scheme.lower(), their_host, their_port or DEFAULT_PORTS[scheme]) != (scheme, host, port):
        return None
    return scheme, host, port


def unsafe_url_reason(url: str) -> str | None:
    """Why ``url`` must not be fetched at all, or None: checked before any request is made."""
    if "\\" in url:
        return "it contains a backslash, which URL parsers read differently"
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in url):
        return "it contains whitespace or control characters"
    try:
        parts = parse_url(url)
    except LocationParseError:
        return "it cannot be parsed (a bad host or port)"
    if (parts.scheme or "").lower() not in DEFAULT_PORTS:
        return "only http(s) and data: URLs are allowed"
    if parts.auth is not None or "@" in (parts.netloc or ""):
        return "it carries a user name or password"
    if parts.port == 0:
        return "port 0 is not a port"
    if connect_origin(url) is None:
        return "its host or port is ambiguous or out of range"
    return None


class ApiAuth(requests.auth.AuthBase):
    """The Bearer token, on exactly the requests (API calls and downloads) whose prepared URL connects
    to the API's origin. A command-made token the API host refuses (401, or Clerk's bare 404) is
    replaced once and the request repeated: a refusal proves nothing was done."""

    def __init__(self, base_url: str, tokens: TokenProvider) -> None:
        self.origin = connect_origin(base_url)
        self.tokens = tokens

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        url = request.url or ""
        if self.origin is not None and unsafe_url_reason(url) is None and connect_origin(url) == self.origin:
            token = self.tokens.get()
            request.headers["Authorization"] = f"Bearer {token}"
            request.register_hook("response", lambda resp, **kw: self._refresh_once(resp, token, **kw))
        return request

    def _refresh_once(self, resp: requests.Response, token: str, **send_kwargs) -> requests.Response:
        if not refused_token(resp) or not self.tokens.invalidate(token):
            return resp
        log.info("3DLabs: token refused (HTTP %s); fetching a fresh one", resp.status_code)
        again = resp.request.copy()
        again.hooks = {"response": []}  # once: a fresh token refused too is the answer
        again.headers["Authorization"] = f"Bearer {self.tokens.get()}"
        resp.close()
        answer = resp.connection.send(again, **send_kwargs)
        answer.history.append(resp)
        return answer


# Failures that happen while connecting, before a byte of the request is written. NewConnectionError (and
# its NameResolutionError) derive from ConnectTimeoutError; a certificate is refused in the handshake.
_BEFORE_SENDING = (ConnectTimeoutError, NewConnectionError, ssl.SSLCertVerificationError, rexc.ConnectTimeout,
                   rexc.InvalidURL, rexc.InvalidSchema, rexc.MissingSchema, rexc.InvalidHeader)


def _causes(exc: BaseException):
    """``exc`` and what it wraps: its cause and context, requests' wrapped exception, MaxRetryError's reason."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen or len(seen) > 32:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)
                 if isinstance(current, MaxRetryError) else None]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]


def _sent_before_failure(exc: Exception) -> bool:
    """False only when the request provably never reached the server: the connection itself failed.
    Decided by type, never by text: a server can put any words into a status line it makes up."""
    return not any(isinstance(cause, _BEFORE_SENDING) for cause in _causes(exc))


def _lost(detail: str, creates_job: bool, status: int | None = None, error_type=NetworkError) -> Exception:
    """An answer that did not arrive whole: a job-creating POST may have made a job, a GET is tried again."""
    if creates_job:
        return (MaybeSubmittedError if error_type is NetworkError else MaybeSubmittedUnreadableError)(detail,
                                                                                                       status=status)
    return Retryable(error_type(detail, status=status))


def _unreadable(detail: str, creates_job: bool, status: int) -> Exception:
    """An answer that arrived but cannot be read, the same way every time: not tried again."""
    if creates_job:
        return MaybeSubmittedUnreadableError(detail + ", so the job id in it is unknown", status=status)
    return ResponseFormatError(detail, status=status)


class HttpTransport:
    """The pack's only way to talk HTTP to the 3DLabs API."""

    def __init__(self, settings: Settings, tokens: TokenProvider, *, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.max_json_bytes = MAX_JSON_BYTES
        # requests reads HTTP(S)_PROXY, NO_PROXY and REQUESTS_CA_BUNDLE from the environment itself.
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.auth = ApiAuth(settings.base_url, tokens)  # also keeps ~/.netrc and URL credentials out
        # Connections kept per host: the node runs' pool makes at most max_in_flight requests at once, and
        # a few come from elsewhere (a node's own reuse checks and project list, the settings routes).
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=settings.max_in_flight + 4,
                                                max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def get_json(self, path: str, *, workspace_id: str | None = None, cancel_check: CancelCheck | None = None):
        """``path`` is relative to the API root (``"jobs/123"``) or a published ``/api/...`` path."""
        return self._request("GET", path, None, workspace_id, cancel_check)

    def post_job(self, path: str, body: dict, *, workspace_id: str | None = None,
                 cancel_check: CancelCheck | None = None, idempotency_key: str | None = None):
        """``idempotency_key`` goes out as ``Idempotency-Key``: an API that honours it makes one job per key
        (nothing here relies on that), and every retry of this POST carries the same one."""
        return self._request("POST", path, body, workspace_id, cancel_check,
                             {"Idempotency-Key": idempotency_key} if idempotency_key else {})

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, path: str, body: dict | None, workspace_id: str | None,
                 cancel_check: CancelCheck | None, extra_headers: dict | None = None):
        path = path.lstrip("/")
        url = self.settings.base_url.rstrip("/") + "/" + (path[len("api/"):] if path.startswith("api/") else path)
        ws = workspace_id or self.settings.workspace_id
        headers = {"x-workspace-id": ws, **(extra_headers or {})} if ws else dict(extra_headers or {})
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)

        def once():
            try:
                # Streamed, so that the body is read under a cap instead of whole.
                resp = self.session.request(method, url, headers=headers, json=body, timeout=timeout,
                                            allow_redirects=False, stream=True)
            except rexc.RequestException as exc:
                said = redact(str(exc))
                detail = f"{method} {url}: {type(exc).__name__}: {said if len(said) <= 200 else said[:197] + '...'}"
                raise _lost(detail, method == "POST" and _sent_before_failure(exc)) from None
            with resp:
                return self._read(resp, method, url, ws, method == "POST")

        return self.retry.run(once, cancel_check=cancel_check, what=f"{method} {path}")

    def _read(self, resp: requests.Response, method: str, url: str, workspace_id: str | None, creates_job: bool):
        status = resp.status_code
        if status >= 300:
            err = error_for_response(resp, error_text(resp), workspace_id=workspace_id)
            if status in (POST_SAFE_STATUSES if creates_job else RETRY_STATUSES):
                raise Retryable(err, parse_retry_after(resp.headers.get("Retry-After")))
            if creates_job and status >= 500:
                raise MaybeSubmittedServerError(err.detail, status=status)
            raise err
        try:
            body, fits = read_capped(resp, self.max_json_bytes, truncate=False)
        except rexc.RequestException as exc:
            raise _lost(f"{method} {url}: the answer broke off ({type(exc).__name__})", creates_job) from None
        if not fits:
            raise _unreadable(f"{method} {url} answered with more than {self.max_json_bytes / 2**20:g} MiB (the limit "
                              "for an answer); it was not read further", creates_job, status)
        try:
            text = body_text(resp, body)
        except LookupError:  # a charset Python does not know: the text cannot be told
            raise _unreadable(f"{method} {url} answered in an unknown charset ({redact(resp.encoding)[:40]!r})",
                              creates_job, status) from None
        if "html" in resp.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<":
            if looks_like_sign_in(text, resp.url):
                raise AuthError(f"{method} {url} answered with a sign-in page instead of JSON", status=status)
            err = ResponseFormatError(f"{method} {url} answered with an HTML page instead of JSON", status=status,
                                      hint=_HTML_HINT)
            raise err if creates_job else Retryable(err)
        if not text.strip():
            raise _lost(f"{method} {url} answered {status} with an empty body", creates_job, status,
                        ResponseFormatError)
        if count_containers(text, MAX_JSON_CONTAINERS) > MAX_JSON_CONTAINERS:
            raise _unreadable(f"{method} {url} answered with more than {MAX_JSON_CONTAINERS:,} JSON objects and "
                              "arrays (the limit for an answer); it was not parsed", creates_job, status)
        try:
            return json.loads(text)
        except RecursionError:  # nested deeper than the interpreter's stack: no real answer is
            raise _unreadable(f"{method} {url} answered with JSON nested too deeply to read", creates_job,
                              status) from None
        except ValueError:
            if creates_job:  # the job was probably created; its id is unreadable, so do not send it again
                raise MaybeSubmittedUnreadableError(f"{method} {url}: the answer was not valid JSON",
                                                    status=status) from None
            raise Retryable(ResponseFormatError(f"{method} {url} answered with invalid JSON: {text[:80]!r}",
                                                status=status)) from None


def read_capped(resp: requests.Response, limit: int, *, truncate: bool) -> tuple[bytes, bool]:
    """The body, up to ``limit`` decoded bytes (which also stops compression bombs), and whether it fit.
    With ``truncate`` what fits is kept; without, a body declared larger is not read at all, and none
    past the limit."""
    declared = (resp.headers.get("Content-Length") or "").strip()
    if not truncate and declared.isdigit() and int(declared) > limit:
        return b"", False
    body = bytearray()
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        body += chunk
        if len(body) > limit:
            break
    return bytes(body[:limit] if truncate else body), len(body) <= limit


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def count_containers(text: str, limit: int) -> int:
    """How many objects and arrays JSON ``text`` opens (exactly once past ``limit``: brackets inside
    strings are not counted then). The first count costs two passes in C, not a parse."""
    rough = text.count("{") + text.count("[")
    if rough <= limit:
        return rough
    bare = _JSON_STRING.sub("", text)
    return bare.count("{") + bare.count("[")


def error_text(resp: requests.Response) -> str:
    """What fits of an error answer's body: the status says enough, the server's words may still help."""
    try:
        body = read_capped(resp, MAX_ERROR_BODY_BYTES, truncate=True)[0]
    except rexc.RequestException:
        return ""
    try:
        return body_text(resp, body)
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def body_text(resp: requests.Response, body: bytes) -> str:
    # JSON is UTF-8 unless the answer names another charset; never guessed from the bytes.
    return body.decode(resp.encoding or "utf-8", errors="replace")
