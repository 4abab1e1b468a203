"""One requests Session per client: the token, timeouts, capped reads and HTTP error mapping.

Which failures are tried again is :mod:`.retry`'s policy (shared with the image downloads); this
module decides, per answer, whether an attempt may be repeated: for a job-creating POST only a
refusal before sending or a 429, since a 5xx or anything after the request left (read timeout,
reset, an answer too large to read) may hide a job and raises a MaybeSubmittedError instead.
The token: :class:`ApiAuth` decides on the prepared request, from the URL exactly as the sending
library will connect, and is also the one place that refreshes a command-made token after a 401.
Redirects are never followed. JSON answers are read streamed under a size cap.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from urllib.parse import urljoin, urlsplit

import requests
from requests import exceptions as rexc
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .auth import TokenProvider
from .config import DEFAULT_BASE_URL, Settings
from .errors import (
    AuthError,
    MaybeSubmittedError,
    MaybeSubmittedServerError,
    NetworkError,
    ResponseFormatError,
    error_for_response,
    looks_like_sign_in,
    parse_retry_after,
    redact,
    refused_token,
)
from .retry import POST_SAFE_STATUSES, RETRY_STATUSES, CancelCheck, Retryable, RetryPolicy
from .version import USER_AGENT

log = logging.getLogger("3dlabs")

MAX_JSON_BYTES = 32 * 1024 * 1024  # the largest JSON answer read; a 400 MB one must not take the machine
MAX_ERROR_BODY_BYTES = 64 * 1024  # of an error answer only the server's message is read
DEFAULT_PORTS = {"http": 80, "https": 443}

# --- where a URL really goes -------------------------------------------------------------------


def connect_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) the sending library connects to for ``url``; None if they cannot agree.

    requests prepares URLs with urllib3's parser, and its adapter keys connections by urllib.parse on
    the prepared URL: both must name the same place, or the URL is nobody's to trust.
    """
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
    """The Bearer token, on exactly the requests whose prepared URL connects to the API's origin.

    Used for every request of the session (API calls and image downloads), so the decision is made
    once, on the URL as it will be sent. A command-made token the API host refuses (401, or Clerk's
    bare 404) is replaced once and the request repeated: a refusal proves nothing was done.
    """

    def __init__(self, base_url: str, tokens: TokenProvider) -> None:
        self.origin = connect_origin(base_url)
        self.tokens = tokens

    def applies_to(self, url: str) -> bool:
        return self.origin is not None and unsafe_url_reason(url) is None and connect_origin(url) == self.origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self.applies_to(request.url or ""):
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

    def __init__(self, settings: Settings, tokens: TokenProvider, *, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.max_json_bytes = MAX_JSON_BYTES
        self.session = requests.Session()
        # requests reads HTTP(S)_PROXY, NO_PROXY and REQUESTS_CA_BUNDLE from the environment itself.
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.auth = ApiAuth(settings.base_url, tokens)
        self.session.auth = self.auth  # also keeps requests from sending ~/.netrc or URL credentials
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # -- public ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """``path`` is relative to the API root (``"jobs/123"``) or a published ``/api/...`` path."""
        path = path.lstrip("/")
        if path.startswith("api/"):
            path = path[len("api/"):]
        return self.settings.base_url.rstrip("/") + "/" + path

    def get_json(self, path: str, *, workspace_id: str | None = None, retry: bool = True,
                 cancel_check: CancelCheck | None = None):
        return self._request("GET", path, workspace_id=workspace_id, retry=retry, cancel_check=cancel_check)

    def post_job(self, path: str, body: dict, *, workspace_id: str | None = None,
                 cancel_check: CancelCheck | None = None):
        return self._request("POST", path, json_body=body, workspace_id=workspace_id, creates_job=True,
                             cancel_check=cancel_check)

    def close(self) -> None:
        self.session.close()

    # -- internals -------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json_body=None, workspace_id=None, creates_job=False,
                 retry: bool = True, cancel_check: CancelCheck | None = None):
        url = self.url(path)
        ws = workspace_id or self.settings.workspace_id
        headers = {"x-workspace-id": ws} if ws else {}
        return self.retry.run(lambda: self._once(method, url, headers, json_body, ws, creates_job),
                              cancel_check=cancel_check, enabled=retry, what=f"{method} {path}")

    def _once(self, method, url, headers, json_body, workspace_id, creates_job):
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            # Streamed, so that the body is read under a cap instead of whole.
            resp = self.session.request(method, url, headers=headers, json=json_body, timeout=timeout,
                                        allow_redirects=False, stream=True)
        except rexc.RequestException as exc:
            detail = f"{method} {url}: {type(exc).__name__}: {_short(exc)}"
            if creates_job and _sent_before_failure(exc):
                raise MaybeSubmittedError(detail) from None
            raise Retryable(NetworkError(detail)) from None
        try:
            return self._read(resp, method, url, workspace_id, creates_job)
        finally:
            resp.close()

    def _read(self, resp, method, url, workspace_id, creates_job):
        status = resp.status_code
        failed = status >= 300
        try:
            fits = _preload(resp, MAX_ERROR_BODY_BYTES if failed else self.max_json_bytes, truncate=failed)
        except rexc.RequestException as exc:
            if not failed:
                detail = f"{method} {url}: the answer broke off ({type(exc).__name__})"
                if creates_job:
                    raise MaybeSubmittedError(detail) from None
                raise Retryable(NetworkError(detail)) from None
            resp._content, resp._content_consumed, fits = b"", True, True  # the status says enough
        if 300 <= status < 400:
            # Never follow: the next hop would need the token, and it may not be the API host.
            location = urljoin(url, resp.headers.get("Location", ""))
            if looks_like_sign_in("", location):
                raise AuthError(f"redirected to a sign-in page: {redact(location)[:200]}", status=status)
            raise error_for_response(resp, workspace_id=workspace_id)
        if status >= 400:
            err = error_for_response(resp, workspace_id=workspace_id)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if creates_job:
                if status in POST_SAFE_STATUSES:
                    raise Retryable(err, retry_after)
                if status >= 500:
                    raise MaybeSubmittedServerError(err.detail, status=status) from None
                raise err
            if status in RETRY_STATUSES:
                raise Retryable(err, retry_after)
            raise err
        if not fits:
            detail = (f"{method} {url} answered with more than {_mib(self.max_json_bytes)} (the limit for an "
                      "answer); it was not read further")
            if creates_job:
                raise MaybeSubmittedError(detail + ", so the job id in it is unknown", status=status)
            raise ResponseFormatError(detail, status=status)
        content_type = resp.headers.get("Content-Type", "")
        try:
            text = resp.text
        except rexc.RequestException as exc:
            detail = f"{method} {url}: the answer broke off ({type(exc).__name__})"
            if creates_job:
                raise MaybeSubmittedError(detail) from None
            raise Retryable(NetworkError(detail)) from None
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            if looks_like_sign_in(text, resp.url):
                raise AuthError(f"{method} {url} answered with a sign-in page instead of JSON", status=status)
            err = ResponseFormatError(f"{method} {url} answered with an HTML page instead of JSON", status=status,
                                      hint=_HTML_HINT)
            if creates_job:
                raise err
            raise Retryable(err)
        try:
            return json.loads(text) if text.strip() else _empty(method, url, status, creates_job)
        except ValueError:
            err = ResponseFormatError(f"{method} {url} answered with invalid JSON: {text[:80]!r}", status=status)
            if creates_job:
                # The job was probably created; its id is unreadable, so do not send it again.
                raise MaybeSubmittedError(f"{method} {url}: the answer was not valid JSON", status=status) from None
            raise Retryable(err) from None


def _preload(resp: requests.Response, limit: int, *, truncate: bool) -> bool:
    """Read the body into ``resp`` (so .text and .json work) up to ``limit`` bytes, decoded.

    False if the body is larger: with ``truncate`` what fits is kept, else nothing past the limit
    is read and the caller refuses the answer. Counting decoded bytes also stops compression bombs.
    """
    if getattr(resp, "_content_consumed", False):
        fits = len(resp.content or b"") <= limit
        if not fits and truncate:
            resp._content = resp.content[:limit]
        return fits
    declared = (resp.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit and not truncate:
        resp._content, resp._content_consumed = b"", True
        return False
    body = bytearray()
    fits = True
    for chunk in resp.iter_content(chunk_size=64 * 1024):
        body += chunk
        if len(body) > limit:
            fits = False
            break
    resp._content, resp._content_consumed = bytes(body[:limit]) if truncate else bytes(body), True
    return fits


def _mib(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:.0f} MiB" if mib == int(mib) else f"{mib:.1f} MiB"


# A web page where the API should answer is most often a base URL that names the website (or a path
# the API does not have), or a proxy answering in the API's place; no job id came back either way.
_HTML_HINT = ("Check the base URL (THREEDLABS_BASE_URL or the 3DLabs settings): it must name the API, as in "
              f"{DEFAULT_BASE_URL}, not the website. A proxy or captive portal can also answer with a page.")


def _empty(method, url, status, creates_job):
    if creates_job:
        raise MaybeSubmittedError(f"{method} {url} answered {status} with an empty body", status=status)
    raise Retryable(ResponseFormatError(f"{method} {url} answered {status} with an empty body", status=status))


def _short(exc: Exception) -> str:
    text = redact(str(exc))
    return text if len(text) <= 200 else text[:197] + "..."
