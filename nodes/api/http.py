"""One requests Session per client: auth headers, timeouts, retries and HTTP error mapping.

Retry rules, because every job costs money:
- GETs are idempotent: connection errors, 429, 502, 503 and 504 (and unreadable bodies) are retried
  with exponential backoff and full jitter, honouring Retry-After, within a bounded count and time.
- A POST that creates a job is retried only when it provably never reached the server (refused,
  DNS or TLS failure, connect timeout) or the server said no job was made (429, 503). Anything
  after the request left (read timeout, reset) raises MaybeSubmittedError and is never re-sent.
Redirects are never followed with the Authorization header; the header goes to the API host only.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests import exceptions as rexc

from .auth import TokenProvider
from .config import DEFAULT_BASE_URL, Settings
from .errors import (
    APIError,
    AuthError,
    ForbiddenError,
    InvalidRequestError,
    MaybeSubmittedError,
    NetworkError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    ThreeDLabsError,
    redact,
)
from .version import USER_AGENT

log = logging.getLogger("3dlabs")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
POST_SAFE_STATUSES = frozenset({429, 503})  # the server said no job was made
CLERK_HEADERS = ("x-clerk-auth-status", "x-clerk-auth-reason", "x-clerk-auth-message")


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


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(resp: requests.Response) -> str:
    """The server's own words about an error, short and with markup stripped."""
    text = ""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "detail", "details", "reason"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("detail") or json.dumps(value)[:300]
            if isinstance(value, str) and value.strip():
                text = value.strip()
                break
    if not text:
        raw = resp.text or ""
        if "<" in raw[:200]:
            title = re.search(r"<title[^>]*>(.*?)</title>", raw, re.I | re.S)
            raw = title.group(1) if title else re.sub(r"<[^>]+>", " ", raw)
        text = " ".join(raw.split())
    return redact(text[:300])


def _looks_like_sign_in(text: str, url: str = "") -> bool:
    probe = (text[:4000] + " " + url).lower()
    return any(w in probe for w in ("sign-in", "signin", "sign in", "clerk", "/login", "log in"))


def _clerk_headers(resp: requests.Response) -> dict[str, str]:
    return {h: resp.headers[h] for h in CLERK_HEADERS if resp.headers.get(h)}


def refused_token(resp: requests.Response) -> bool:
    """Whether the API host turned the token away: a 401, or Clerk's bare 404 for an expired session."""
    return resp.status_code == 401 or (resp.status_code == 404 and bool(_clerk_headers(resp)))


def error_for_response(resp: requests.Response, *, workspace_id: str | None = None) -> APIError:
    """Map a non-success answer to one typed error, with the server's reason."""
    status = resp.status_code
    clerk = _clerk_headers(resp)
    message = _server_message(resp)
    if refused_token(resp):
        reason = clerk.get("x-clerk-auth-reason") or message or "unauthorized"
        return AuthError(
            f"Clerk says: {reason} (HTTP {status})",
            status=status,
            hint="Clerk session tokens live 60 s: use THREEDLABS_TOKEN_COMMAND to mint fresh ones, "
            "or a long-lived API key.",
        )
    if status == 403:
        ws = f" Workspace sent: {workspace_id}." if workspace_id else ""
        return ForbiddenError(f"{message or 'forbidden'} (HTTP 403).{ws}", status=status,
                              hint="Check THREEDLABS_WORKSPACE_ID or the workspace in the 3DLabs settings.")
    if status == 402:
        return OutOfCreditsError(message, status=status)
    if status == 404:
        return NotFoundError(f"{message or 'not found'} (HTTP 404)", status=status)
    if status == 429:
        return RateLimitedError(message, status=status,
                                retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    if 400 <= status < 500:
        return InvalidRequestError(f"{message or 'bad request'} (HTTP {status})", status=status)
    if 300 <= status < 400:
        location = resp.headers.get("Location", "")
        if _looks_like_sign_in("", location):
            return AuthError(f"redirected to a sign-in page (HTTP {status})", status=status)
        return ServerError(f"unexpected redirect to {redact(location)[:200]} (HTTP {status})", status=status)
    return ServerError(f"{message or 'no details'} (HTTP {status})", status=status)


class _Retryable(Exception):
    def __init__(self, error: ThreeDLabsError, retry_after: float | None = None):
        self.error = error
        self.retry_after = retry_after


def _sent_before_failure(exc: Exception) -> bool:
    """False only when the request provably never reached the server."""
    if isinstance(exc, (rexc.ConnectTimeout, rexc.SSLError, rexc.InvalidURL, rexc.InvalidSchema,
                        rexc.MissingSchema)):
        return False
    if isinstance(exc, rexc.ConnectionError):
        text = repr(exc)
        pre_send = ("NewConnectionError", "NameResolutionError", "Failed to resolve", "Connection refused",
                    "ConnectionRefusedError", "getaddrinfo", "Name or service not known")
        return not any(marker in text for marker in pre_send)
    return True


class HttpTransport:
    """The pack's only way to talk HTTP to the 3DLabs API."""

    def __init__(self, settings: Settings, tokens: TokenProvider, *, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None) -> None:
        self.settings = settings
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        # requests reads HTTP(S)_PROXY, NO_PROXY and REQUESTS_CA_BUNDLE from the environment itself.
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._lock = threading.Lock()
        self.request_count = 0

    # -- public ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """``path`` is relative to the API root (``"jobs/123"``) or a published ``/api/...`` path."""
        path = path.lstrip("/")
        if path.startswith("api/"):
            path = path[len("api/"):]
        return self.settings.base_url.rstrip("/") + "/" + path

    def is_api_url(self, url: str) -> bool:
        parts = urlsplit(url)
        api = urlsplit(self.settings.base_url)
        return (parts.scheme, (parts.hostname or "").lower(), parts.port) == (
            api.scheme, (api.hostname or "").lower(), api.port)

    def get_json(self, path: str, *, workspace_id: str | None = None, retry: bool = True):
        return self._request("GET", path, workspace_id=workspace_id, retry=retry)

    def post_job(self, path: str, body: dict, *, workspace_id: str | None = None):
        return self._request("POST", path, json_body=body, workspace_id=workspace_id, creates_job=True)

    def close(self) -> None:
        self.session.close()

    # -- internals -------------------------------------------------------------------------

    def _headers(self, workspace_id: str | None) -> dict:
        headers = {"Authorization": f"Bearer {self.tokens.get()}"}
        ws = workspace_id or self.settings.workspace_id
        if ws:
            headers["x-workspace-id"] = ws
        return headers

    def _request(self, method: str, path: str, *, json_body=None, workspace_id=None, creates_job=False,
                 retry: bool = True):
        url = self.url(path)
        workspace_id = workspace_id or self.settings.workspace_id
        started = time.monotonic()
        refreshed_after_401 = False
        attempt = 0
        while True:
            headers = self._headers(workspace_id)
            try:
                return self._once(method, url, headers, json_body, workspace_id, creates_job)
            except AuthError as err:
                # A command-made token may have expired between minting and use: refresh once.
                if not refreshed_after_401 and self.tokens.invalidate(headers["Authorization"][7:]):
                    refreshed_after_401 = True
                    log.info("3DLabs: token refused (%s); fetching a fresh one", err.detail)
                    continue
                raise
            except _Retryable as r:
                attempt += 1
                elapsed = time.monotonic() - started
                delay = self.retry.delay(attempt - 1, r.retry_after)
                if (not retry or attempt >= self.retry.max_attempts
                        or elapsed + delay > self.retry.max_total_seconds):
                    raise r.error from None
                log.debug("3DLabs: %s %s failed (%s); retry %d in %.2fs", method, path,
                          type(r.error).__name__, attempt, delay)
                time.sleep(delay)

    def _once(self, method, url, headers, json_body, workspace_id, creates_job):
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        with self._lock:
            self.request_count += 1
        try:
            resp = self.session.request(method, url, headers=headers, json=json_body, timeout=timeout,
                                        allow_redirects=False)
        except rexc.RequestException as exc:
            detail = f"{method} {url}: {type(exc).__name__}: {_short(exc)}"
            if creates_job and _sent_before_failure(exc):
                raise MaybeSubmittedError(detail) from None
            raise _Retryable(NetworkError(detail)) from None
        try:
            return self._read(resp, method, url, workspace_id, creates_job)
        finally:
            resp.close()

    def _read(self, resp, method, url, workspace_id, creates_job):
        status = resp.status_code
        if 300 <= status < 400:
            # Never follow: the next hop would need the token, and it may not be the API host.
            location = urljoin(url, resp.headers.get("Location", ""))
            if _looks_like_sign_in("", location):
                raise AuthError(f"redirected to a sign-in page: {redact(location)[:200]}", status=status)
            raise error_for_response(resp, workspace_id=workspace_id)
        if status >= 400:
            err = error_for_response(resp, workspace_id=workspace_id)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if creates_job:
                if status in POST_SAFE_STATUSES:
                    raise _Retryable(err, retry_after)
                raise err
            if status in RETRY_STATUSES:
                raise _Retryable(err, retry_after)
            raise err
        content_type = resp.headers.get("Content-Type", "")
        try:
            text = resp.text
        except rexc.RequestException as exc:
            detail = f"{method} {url}: the answer broke off ({type(exc).__name__})"
            if creates_job:
                raise MaybeSubmittedError(detail) from None
            raise _Retryable(NetworkError(detail)) from None
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            if _looks_like_sign_in(text, resp.url):
                raise AuthError(f"{method} {url} answered with a sign-in page instead of JSON", status=status)
            err = ResponseFormatError(f"{method} {url} answered with an HTML page instead of JSON", status=status,
                                      hint=_HTML_HINT)
            if creates_job:
                raise err
            raise _Retryable(err)
        try:
            return json.loads(text) if text.strip() else _empty(method, url, status, creates_job)
        except ValueError:
            err = ResponseFormatError(f"{method} {url} answered with invalid JSON: {text[:80]!r}", status=status)
            if creates_job:
                # The job was probably created; its id is unreadable, so do not send it again.
                raise MaybeSubmittedError(f"{method} {url}: the answer was not valid JSON", status=status) from None
            raise _Retryable(err) from None


# A web page where the API should answer is most often a base URL that names the website (or a path
# the API does not have), or a proxy answering in the API's place; no job id came back either way.
_HTML_HINT = ("Check the base URL (THREEDLABS_BASE_URL or the 3DLabs settings): it must name the API, as in "
              f"{DEFAULT_BASE_URL}, not the website. A proxy or captive portal can also answer with a page.")


def _empty(method, url, status, creates_job):
    if creates_job:
        raise MaybeSubmittedError(f"{method} {url} answered {status} with an empty body", status=status)
    raise _Retryable(ResponseFormatError(f"{method} {url} answered {status} with an empty body", status=status))


def _short(exc: Exception) -> str:
    text = redact(str(exc))
    return text if len(text) <= 200 else text[:197] + "..."
