"""What a non-success HTTP answer means, as one of the pack's typed errors: the status, Clerk's headers,
the server's own words (redacted) and Retry-After. The answer is duck-typed (status_code, headers, url):
no requests here.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any
from urllib.parse import urljoin

from .errors import (
    APIError,
    AuthError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
)
from .redaction import redact


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date); None if absent or unreadable."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def server_words(body: object) -> str:
    """The server's own message in a JSON answer (``{"error": ...}`` and kin), or ""."""
    if not isinstance(body, dict):
        return ""
    for key in ("error", "message", "detail", "details", "reason"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("detail") or json.dumps(value)[:300]
        if isinstance(value, str) and value.strip():
            return redact(value.strip()[:300])
    return ""


def _server_message(body: str) -> str:
    """The server's own words about an error, short and with markup stripped."""
    try:
        text = server_words(json.loads(body))
    except (ValueError, RecursionError):
        text = ""
    if not text:
        raw = body
        if "<" in raw[:200]:
            title = re.search(r"<title[^>]*>(.*?)</title>", raw, re.I | re.S)
            raw = title.group(1) if title else re.sub(r"<[^>]+>", " ", raw)
        text = " ".join(raw.split())
    return redact(text[:300])


def looks_like_sign_in(text: str, url: str = "") -> bool:
    probe = (text[:4000] + " " + url).lower()
    return any(w in probe for w in ("sign-in", "signin", "sign in", "clerk", "/login", "log in"))


def refused_token(resp: Any) -> bool:
    """Whether the API host turned the token away: a 401, or Clerk's bare 404 for an expired session."""
    return resp.status_code == 401 or (resp.status_code == 404 and bool(_clerk_headers(resp)))


def _clerk_headers(resp: Any) -> dict[str, str]:
    names = ("x-clerk-auth-status", "x-clerk-auth-reason", "x-clerk-auth-message")
    return {h: resp.headers[h] for h in names if resp.headers.get(h)}


def error_for_response(resp: Any, body: str = "", *, workspace_id: str | None = None) -> APIError:
    """Map a non-success answer (its status and headers, and the ``body`` text read so far) to one
    typed error, with the server's reason."""
    status = resp.status_code
    message = _server_message(body)
    if refused_token(resp):
        reason = _clerk_headers(resp).get("x-clerk-auth-reason") or message or "unauthorized"
        return AuthError(f"Clerk says: {reason} (HTTP {status})", status=status,
                         hint="Clerk session tokens live 60 s: use THREEDLABS_TOKEN_COMMAND to mint fresh ones, "
                              "or a long-lived API key.")
    if status == 403:
        ws = f" Workspace sent: {workspace_id}." if workspace_id else ""
        return ForbiddenError(f"{message or 'forbidden'} (HTTP 403).{ws}", status=status,
                              hint="Check THREEDLABS_WORKSPACE_ID or the workspace in the 3DLabs settings.")
    if status == 402:
        return OutOfCreditsError(message, status=status)
    if status == 404:
        return NotFoundError(f"{message or 'not found'} (HTTP 404)", status=status)
    if status == 429:
        return RateLimitedError(message, status=status, retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    if 400 <= status < 500:
        return InvalidRequestError(f"{message or 'bad request'} (HTTP {status})", status=status)
    if 300 <= status < 400:  # never followed: the next hop would need the token, and may not be the API host
        location = urljoin(resp.url or "", resp.headers.get("Location", ""))
        if looks_like_sign_in("", location):
            return AuthError(f"redirected to a sign-in page: {redact(location)[:200]}", status=status)
        return ServerError(f"unexpected redirect to {redact(location)[:200]} (HTTP {status})", status=status)
    return ServerError(f"{message or 'no details'} (HTTP {status})", status=status)
