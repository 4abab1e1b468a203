"""Bearer tokens the sandbox accepts: static tokens, and short-lived JWT-shaped tokens signed with HS256.

The JWTs imitate Clerk session tokens closely enough for a client to read ``exp`` without verifying,
which is what the real client does to decide when to fetch a fresh one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterable

DEFAULT_STATIC_TOKEN = "sandbox-static-token-0123456789"
SUBJECT = "user_sandbox"


class Verdict(enum.Enum):
    OK = "ok"
    MISSING = "session-token-missing"
    EXPIRED = "session-token-expired"
    INVALID = "session-token-invalid"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Issues, revokes and checks tokens; ``clock`` gives epoch seconds (a test may pass a fake one)."""

    def __init__(self, secret: bytes, static_tokens: Iterable[str], clock: Callable[[], float]) -> None:
        self._secret = secret
        self._static = tuple(static_tokens)
        self._clock = clock
        self._revoked: set[str] = set()
        self._lock = threading.Lock()

    @property
    def static_tokens(self) -> tuple[str, ...]:
        return self._static

    def issue(self, ttl: float, subject: str = SUBJECT, issuer: str = "") -> str:
        now = self._clock()
        header = {"alg": "HS256", "typ": "JWT", "kid": "sandbox"}
        payload = {
            "sub": subject,
            "iat": now,
            "exp": now + float(ttl),
            "iss": issuer,
            "sid": "sess_" + secrets.token_hex(6),
            "jti": secrets.token_hex(8),  # two tokens minted in the same instant must still differ
        }
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(payload).encode())
        return signing_input + "." + _b64url(self._sign(signing_input))

    def revoke(self, token: str) -> None:
        with self._lock:
            self._revoked.add(token)

    def clear_revocations(self) -> None:
        with self._lock:
            self._revoked.clear()

    def check(self, authorization: str | None) -> Verdict:
        """Judge an ``Authorization`` header value the way Clerk's middleware sorts failures."""
        if not authorization or not authorization.strip():
            return Verdict.MISSING
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            return Verdict.INVALID
        if not token:
            return Verdict.MISSING
        with self._lock:
            if token in self._revoked:
                return Verdict.INVALID
        if any(hmac.compare_digest(token, known) for known in self._static):
            return Verdict.OK
        return self._check_jwt(token)

    def _check_jwt(self, token: str) -> Verdict:
        parts = token.split(".")
        if len(parts) != 3:
            return Verdict.INVALID
        try:
            signature = _unb64url(parts[2])
            payload = json.loads(_unb64url(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return Verdict.INVALID
        # The signature is checked before exp: an unsigned claim of freshness proves nothing.
        if not hmac.compare_digest(signature, self._sign(parts[0] + "." + parts[1])):
            return Verdict.INVALID
        exp = payload.get("exp") if isinstance(payload, dict) else None
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            return Verdict.INVALID
        return Verdict.OK if self._clock() < exp else Verdict.EXPIRED

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest()
