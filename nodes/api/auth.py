"""Where the bearer token comes from, which API origin it belongs to, and keeping it fresh.

Clerk session tokens live 60 seconds, so a pasted token dies in a minute. Sources, in order:
``THREEDLABS_TOKEN`` (a token or long-lived key), ``THREEDLABS_TOKEN_COMMAND`` (prints a fresh
token; re-run when a JWT's ``exp`` is near and once after a 401), then the same two fields in the
active profile of the config file. Every token seen is registered with ``errors.redact`` so that
it can never surface in a message or a log line.

A token belongs to one API origin (scheme://host[:port]) and is handed out for that origin only:
the env pair goes to ``THREEDLABS_BASE_URL`` (else the official origin); a config token to the
origin recorded when it was saved. Anything that changes the base URL (a route, a page that
reached ComfyUI by DNS rebinding, an edited file) therefore cannot redirect the token: for the new
origin it reads as "not configured; save it again".
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
MAX_COMMAND_OUTPUT = 64 * 1024  # a token is a few KiB at most; more is a wrong command
_STDERR_KEPT = 4096


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


@dataclass(frozen=True, repr=False)
class TokenSource:
    kind: str  # "token" or "command"
    value: str  # the token, or the command line (which may hold a secret too): never shown
    origin: str  # where it was configured, for status displays: "env THREEDLABS_TOKEN", ...
    bound_to: str | None = None  # the API origin it may be sent to; None: any (an explicit source)

    def __repr__(self) -> str:
        return f"TokenSource(kind={self.kind!r}, origin={self.origin!r}, bound_to={self.bound_to!r}, value=<hidden>)"

    __str__ = __repr__


def _origin_or_none(url: str) -> str | None:
    try:
        return config.api_origin(url)
    except ConfigError:
        return None


def configured_sources(profile: str | None = None) -> list[TokenSource]:
    """Every configured token source, in order of precedence, each with the origin it belongs to."""
    sources = []
    env_url = os.environ.get("THREEDLABS_BASE_URL", "").strip()
    env_bound = _origin_or_none(env_url) if env_url else config.OFFICIAL_ORIGIN
    env_token = os.environ.get("THREEDLABS_TOKEN", "").strip()
    if env_token:
        sources.append(TokenSource("token", env_token, "env THREEDLABS_TOKEN", env_bound))
    env_cmd = os.environ.get("THREEDLABS_TOKEN_COMMAND", "").strip()
    if env_cmd:
        sources.append(TokenSource("command", env_cmd, "env THREEDLABS_TOKEN_COMMAND", env_bound))
    data = config.read_config_file()
    name = profile or config.active_profile_name(data)
    prof = config.read_profile(name, data)
    bound = config.profile_token_origin(prof)
    if prof.get("token"):
        sources.append(TokenSource("token", prof["token"], f"config file, profile {name}", bound))
    if prof.get("token_command"):
        sources.append(TokenSource("command", prof["token_command"], f"config file, profile {name} (command)", bound))
    return sources


def _target_origin(profile: str | None, base_url: str | None) -> str | None:
    """The origin requests will go to: ``base_url``, else the current settings' (None if unusable)."""
    try:
        return config.api_origin(base_url or config.load_settings(profile=profile).base_url)
    except ConfigError:
        return None


def mismatch_problem(source: TokenSource, target: str | None) -> str:
    """Why ``source`` is not sent to ``target``, in words for the status panel and the AuthError."""
    if source.origin.startswith("env "):
        var = source.origin[4:]
        bound = source.bound_to or "an unusable URL"
        if os.environ.get("THREEDLABS_BASE_URL", "").strip():
            whose = f"{var} belongs to THREEDLABS_BASE_URL ({bound})"
        else:
            whose = f"{var} belongs to the official 3DLabs service ({bound}) because THREEDLABS_BASE_URL is not set"
        return (f"{whose}, so it is not sent to {target}. To use it there, set THREEDLABS_BASE_URL to that URL; "
                "or save a token for it in the settings")
    return (f"The token ({source.origin}) was saved for {source.bound_to or 'another URL'}; "
            f"save it again for {target} (a token is never sent to another URL than the one it was saved for)")


def describe_token(profile: str | None = None, base_url: str | None = None) -> dict:
    """Token status for UIs: never the token, only where it is from and its last 4 characters.

    A token configured for another origin than ``base_url`` reads as not configured, with
    ``saved_for``, ``needed_for`` and ``problem`` saying what to do.
    """
    target = _target_origin(profile, base_url)
    sources = configured_sources(profile)
    source = next((s for s in sources if target and s.bound_to == target), None)
    if source is None:
        status = {"configured": False, "source": None, "last4": None, "kind": None}
        if sources and target:
            status.update(saved_for=sources[0].bound_to, needed_for=target,
                          problem=mismatch_problem(sources[0], target) + ".")
        return status
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
    """Hands out a usable token for one API origin; thread-safe; refreshes command-made tokens.

    ``base_url`` is where the caller sends requests; without it, the URL of the settings current
    when the provider is made. An explicit ``source`` without ``bound_to`` is trusted as given.
    """

    def __init__(self, source: TokenSource | None = None, *, profile: str | None = None,
                 base_url: str | None = None, clock=time.time) -> None:
        self._explicit = source
        self._profile = profile
        self._base_url = base_url
        # An explicit source without an origin (a script's own token) goes wherever its caller sends it.
        self._bound = source is None or source.bound_to is not None or bool(base_url)
        self._target = _target_origin(profile, base_url) if self._bound else None
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: str | None = None
        self._cached_from: TokenSource | None = None

    def __repr__(self) -> str:
        return f"TokenProvider(profile={self._profile!r}, target={self._target!r})"

    def _pick(self) -> tuple[TokenSource | None, AuthError | None]:
        target = self._target
        if target is None and self._bound:
            target = self._target = _target_origin(self._profile, self._base_url)
            if target is None:  # the settings are unusable: say why, with their own error
                config.load_settings(base_url=self._base_url, profile=self._profile)
        if self._explicit is not None:
            sources = [self._explicit]
        else:
            sources = configured_sources(self._profile)
        for source in sources:
            if source.bound_to is None and self._explicit is not None:
                return source, None
            if source.bound_to is not None and source.bound_to == target:
                return source, None
        if not sources:
            return None, AuthError(
                "No 3DLabs token is configured, so nothing was sent",
                summary="No 3DLabs token is set.",
                hint="Paste a token or API key in ComfyUI's settings (3DLabs > Token), or set THREEDLABS_TOKEN "
                "or THREEDLABS_TOKEN_COMMAND. No account? Choose 'sandbox' as the base URL in the 3DLabs "
                "settings to try the nodes with made-up content.",
            )
        return None, AuthError(mismatch_problem(sources[0], target), hint="Nothing was sent.",
                               summary=f"No 3DLabs token is configured for {target}.")

    def get(self) -> str:
        with self._lock:
            source, problem = self._pick()
            if source is None:
                raise problem
            if source.kind == "token":
                register_secret(source.value)
                return _sendable(source.value, source)
            if self._cached and self._cached_from == source and not self._expiring(self._cached):
                register_secret(self._cached)  # in use, so among the newest that redaction keeps masking
                return self._cached
            self._cached = _sendable(run_token_command(source), source)
            self._cached_from = source
            return self._cached

    def invalidate(self, token: str | None = None) -> bool:
        """Drop a cached command token after a 401; True if a retry with a fresh token makes sense."""
        with self._lock:
            try:
                source, _ = self._pick()
            except ConfigError:
                return False
            if source is None or source.kind != "command":
                return False
            if token is None or token == self._cached:
                self._cached = None
            return True

    def _expiring(self, token: str) -> bool:
        exp = jwt_expiry(token)
        return exp is not None and exp - self._clock() <= REFRESH_MARGIN_SECONDS


# --- the token command ------------------------------------------------------------------------


def _shell_argv(command: str) -> list[str] | None:
    """How to run ``command`` in a shell (users write pipelines there); None: let Popen's shell do it."""
    return ["/bin/sh", "-c", command] if os.name == "posix" else None


def _mask_command(text: str, command: str) -> str:
    """Text a command printed, without any long word of its own command line (it may hold a key)."""
    for word in sorted(set(re.split(r"[\s=\"':]+", command)), key=len, reverse=True):
        if len(word) >= 8:
            text = text.replace(word, "***")
    return re.sub(r"\S{20,}", "***", redact(text))


def _run_capped(command: str, timeout: float) -> tuple[str, int | None, bytes, bytes]:
    """Run ``command``; ("ok" | "timeout" | "too-big" | "no-start: why", status, stdout, stderr).

    Reads at most MAX_COMMAND_OUTPUT bytes, kills the whole process group at the deadline, and
    raises nothing: the caller raises its own error outside any ``except`` block, so that neither
    the command line nor its output can ride along as ``__context__``.
    """
    argv = _shell_argv(command)
    posix = argv is not None
    try:
        proc = subprocess.Popen(argv if posix else command, shell=not posix, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=posix)
    except OSError as exc:
        return f"no-start: {exc.strerror or type(exc).__name__}", None, b"", b""
    out, err = bytearray(), bytearray()
    too_big = threading.Event()

    def pump(stream, buf: bytearray, limit: int, strict: bool) -> None:
        try:
            while True:
                chunk = stream.read1(8192) if hasattr(stream, "read1") else stream.read(8192)
                if not chunk:
                    return
                room = limit - len(buf)
                buf += chunk[:max(room, 0)]
                if strict and len(chunk) > room:
                    too_big.set()
                    return
        except (OSError, ValueError):
            return

    threads = [threading.Thread(target=pump, args=(proc.stdout, out, MAX_COMMAND_OUTPUT, True),
                                name="3dlabs-token-out", daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, _STDERR_KEPT, False),
                                name="3dlabs-token-err", daemon=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while proc.poll() is None or threads[0].is_alive():
        if too_big.is_set() or time.monotonic() >= deadline:
            break
        threads[0].join(0.02)
    outcome = "too-big" if too_big.is_set() else ("ok" if proc.poll() is not None and not threads[0].is_alive()
                                                  else "timeout")
    if outcome != "ok":
        _kill(proc, posix)
    for t, stream in zip(threads, (proc.stdout, proc.stderr)):
        t.join(1.0)
        if not t.is_alive():  # a reader still blocked (an escaped grandchild) keeps its pipe: closing would wait
            try:
                stream.close()
            except OSError:
                pass
    try:
        status = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        status = None
    if outcome != "ok":
        out[:] = b"\0" * len(out)  # what a killed command printed is never used, nor kept
        return outcome, status, b"", b""
    return outcome, status, bytes(out), bytes(err)


def _kill(proc: subprocess.Popen, posix: bool) -> None:
    try:
        if posix:
            import signal

            os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
        else:
            proc.kill()
    except (OSError, ProcessLookupError):
        pass


def run_token_command(source: TokenSource) -> str:
    """Run a token command and return the last line it printed; ConfigErrors never quote either."""
    outcome, status, stdout, stderr = _run_capped(source.value, COMMAND_TIMEOUT_SECONDS)
    if outcome == "timeout":
        raise ConfigError(f"The token command ({source.origin}) did not finish within {COMMAND_TIMEOUT_SECONDS:g} s; "
                          "it was stopped and its output discarded")
    if outcome == "too-big":
        raise ConfigError(f"The token command ({source.origin}) printed more than {MAX_COMMAND_OUTPUT // 1024} KiB; "
                          "it was stopped and its output discarded",
                          hint="The command must print the token (a few KiB at most) as its last line.")
    if outcome.startswith("no-start"):
        raise ConfigError(f"The token command ({source.origin}) could not start ({outcome[10:]})")
    text = stdout.decode("utf-8", errors="replace").strip()
    token = text.splitlines()[-1].strip() if text else ""
    if token:
        register_secret(token)
    if status != 0 or not token:
        # Long unbroken words in stderr may be tokens printed by a confused command: mask them.
        said = _mask_command(stderr.decode("utf-8", errors="replace").strip(), source.value)[:300]
        raise ConfigError(
            f"The token command ({source.origin}) exited with status {status} "
            f"and printed {'a token' if token else 'no token'}" + (f": {said}" if said else "")
        )
    return token
