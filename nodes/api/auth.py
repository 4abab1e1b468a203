"""Where the bearer token comes from, and keeping it fresh.

Clerk session tokens live 60 seconds, so a pasted token dies in a minute. Sources, in order:
``THREEDLABS_TOKEN`` (a token or long-lived key), ``THREEDLABS_TOKEN_COMMAND`` (prints a fresh
token; re-run when a JWT's ``exp`` is near and once after a 401), then the same two fields in the
active profile of the config file. Every token seen is registered with ``errors.redact`` so that
it can never surface in a message or a log line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass

from . import config
from .errors import AuthError, ConfigError, redact, register_secret

REFRESH_MARGIN_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 30.0


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT-shaped token, read without verifying; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    except (ValueError, UnicodeError, TypeError):
        return None


@dataclass(frozen=True)
class TokenSource:
    kind: str  # "token" or "command"
    value: str
    origin: str  # where it was configured, for status displays: "env THREEDLABS_TOKEN", ...


def find_token_source(profile: str | None = None) -> TokenSource | None:
    env_token = os.environ.get("THREEDLABS_TOKEN", "").strip()
    if env_token:
        return TokenSource("token", env_token, "env THREEDLABS_TOKEN")
    env_cmd = os.environ.get("THREEDLABS_TOKEN_COMMAND", "").strip()
    if env_cmd:
        return TokenSource("command", env_cmd, "env THREEDLABS_TOKEN_COMMAND")
    data = config.read_config_file()
    name = profile or config.active_profile_name(data)
    prof = config.read_profile(name, data)
    if prof.get("token"):
        return TokenSource("token", prof["token"], f"config file, profile {name}")
    if prof.get("token_command"):
        return TokenSource("command", prof["token_command"], f"config file, profile {name} (command)")
    return None


def describe_token(profile: str | None = None) -> dict:
    """Token status for UIs: never the token, only where it is from and its last 4 characters."""
    source = find_token_source(profile)
    if source is None:
        return {"configured": False, "source": None, "last4": None, "kind": None}
    last4 = source.value[-4:] if source.kind == "token" and len(source.value) >= 12 else None
    return {"configured": True, "source": source.origin, "last4": last4, "kind": source.kind}


def _sendable(token: str, source: TokenSource) -> str:
    """The token if it can travel in an HTTP header; else a ConfigError that never quotes it.

    A stray line break, space or curly quote (pasted from a chat or a PDF) would otherwise fail
    inside the HTTP library: with the header, token included, in its message, or as a bare
    UnicodeEncodeError; and a job-creating POST would be reported as "may have been submitted"
    although nothing was sent.
    """
    if all(33 <= ord(ch) <= 126 for ch in token):
        return token
    raise ConfigError(
        f"The token from {source.origin} contains a space, a line break or a character outside ASCII, "
        "so it cannot be sent in an HTTP header; nothing was sent",
        hint="Paste the token again without surrounding quotes or line breaks.",
    )


class TokenProvider:
    """Hands out a usable token; thread-safe; refreshes command-made tokens before they expire."""

    def __init__(self, source: TokenSource | None = None, *, profile: str | None = None,
                 clock=time.time) -> None:
        self._explicit = source
        self._profile = profile
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: str | None = None
        self._cached_from: TokenSource | None = None

    def _source(self) -> TokenSource | None:
        return self._explicit or find_token_source(self._profile)

    def get(self) -> str:
        with self._lock:
            source = self._source()
            if source is None:
                raise AuthError(
                    "No 3DLabs token is configured",
                    hint="Set THREEDLABS_TOKEN or THREEDLABS_TOKEN_COMMAND, or set a token in "
                    "ComfyUI's settings (3DLabs section).",
                )
            if source.kind == "token":
                register_secret(source.value)
                return _sendable(source.value, source)
            if self._cached and self._cached_from == source and not self._expiring(self._cached):
                return self._cached
            self._cached = _sendable(self._run_command(source), source)
            self._cached_from = source
            return self._cached

    def invalidate(self, token: str | None = None) -> bool:
        """Drop a cached command token after a 401; True if a retry with a fresh token makes sense."""
        with self._lock:
            source = self._source()
            if source is None or source.kind != "command":
                return False
            if token is None or token == self._cached:
                self._cached = None
            return True

    def _expiring(self, token: str) -> bool:
        exp = jwt_expiry(token)
        return exp is not None and exp - self._clock() <= REFRESH_MARGIN_SECONDS

    @staticmethod
    def _run_command(source: TokenSource) -> str:
        try:
            # A shell, because users write pipelines here (their own command, from their own env).
            proc = subprocess.run(
                source.value, shell=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(
                f"The token command ({source.origin}) did not finish within {COMMAND_TIMEOUT_SECONDS:.0f} s"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"The token command ({source.origin}) could not start: {exc}") from exc
        token = (proc.stdout or "").strip().splitlines()[-1].strip() if (proc.stdout or "").strip() else ""
        if token:
            register_secret(token)
        if proc.returncode != 0 or not token:
            # Long unbroken words in stderr may be tokens printed by a confused command: mask them.
            stderr = re.sub(r"\S{20,}", "***", redact((proc.stderr or "").strip()))[:300]
            raise ConfigError(
                f"The token command ({source.origin}) exited with status {proc.returncode} "
                f"and printed {'a token' if token else 'no token'}" + (f": {stderr}" if stderr else "")
            )
        return token
