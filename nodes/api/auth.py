"""Where the bearer token comes from, which API origin it belongs to, and keeping it fresh.

Clerk session tokens live 60 s, so a pasted token dies in a minute. Sources, in order:
``THREEDLABS_TOKEN`` (a token or long-lived key), ``THREEDLABS_TOKEN_COMMAND`` (prints a fresh token;
re-run when a JWT's ``exp`` is near and once after a 401), then the same two fields in the active
profile of the config file. Every token seen is registered with ``redaction.register_secret``.

A token is handed out only for the API origin (scheme://host[:port]) it belongs to: the env pair's
is ``THREEDLABS_BASE_URL`` (else the official one), a config token's the one recorded when it was
saved. So nothing that changes the base URL (a route, a page that reached ComfyUI by DNS rebinding,
an edited file) can redirect the token: for the new origin it reads as "not configured; save it again".
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field

from . import config, urls
from .errors import AuthError, ConfigError
from .redaction import redact, register_secret

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
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    except (ValueError, UnicodeError, TypeError):
        return None


@dataclass(frozen=True)
class TokenSource:
    kind: str  # "token" or "command"
    value: str = field(repr=False)  # the token, or the command line (which may hold a secret too): never shown
    origin: str  # where it was configured, for status displays: "env THREEDLABS_TOKEN", ...
    bound_to: str | None = None  # the API origin it may be sent to; None: any (an explicit source)


def configured_sources(profile: str | None = None) -> list[TokenSource]:
    """Every configured token source, in order of precedence, each with the origin it belongs to."""
    env_bound = urls.origin_or_none(os.environ.get("THREEDLABS_BASE_URL", "").strip())
    data = config.read_config_file()
    name = profile or config.active_profile_name(data)
    prof = config.read_profile(name, data)
    bound = config.profile_token_origin(prof)
    sources = [TokenSource(kind, os.environ.get(var, "").strip(), f"env {var}", env_bound)
               for kind, var in (("token", "THREEDLABS_TOKEN"), ("command", "THREEDLABS_TOKEN_COMMAND"))]
    sources += [TokenSource("token", prof.get("token", ""), f"config file, profile {name}", bound),
                TokenSource("command", prof.get("token_command", ""), f"config file, profile {name} (command)", bound)]
    return [source for source in sources if source.value]


def _target_origin(profile: str | None, base_url: str | None) -> str | None:
    """The origin requests will go to: ``base_url``, else the current settings' (None if unusable)."""
    try:
        return urls.api_origin(base_url or config.load_settings(profile=profile).base_url)
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

    A token for another origin than ``base_url`` reads as not configured, with ``saved_for``,
    ``needed_for`` and ``problem`` saying what to do.
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
    # Where it goes: the panel shows it, so a base URL changed behind the user's back cannot hide.
    return {"configured": True, "source": source.origin, "last4": last4, "kind": source.kind,
            "bound_to": source.bound_to}


def _sendable(token: str, source: TokenSource) -> str:
    """The token if it can travel in an HTTP header; else a ConfigError that never quotes it.

    A stray line break, space or curly quote (pasted from a chat or a PDF) would otherwise fail in
    the HTTP library, token in its message, and a POST would read as "may have been submitted".
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
                 base_url: str | None = None) -> None:
        self._explicit = source
        self._profile = profile
        self._base_url = base_url
        # An explicit source without an origin (a script's own token) goes wherever its caller sends it.
        self._bound = source is None or source.bound_to is not None or bool(base_url)
        self._target = _target_origin(profile, base_url) if self._bound else None
        self._clock = time.time
        self._lock = threading.Lock()
        self._cached: str | None = None
        self._cached_from: TokenSource | None = None

    def _source(self) -> TokenSource:
        """The source for the target origin; else an AuthError saying why (or the settings' ConfigError)."""
        if self._target is None and self._bound:
            self._target = _target_origin(self._profile, self._base_url)
            if self._target is None:  # the settings are unusable: say why, with their own error
                config.load_settings(base_url=self._base_url, profile=self._profile)
        sources = [self._explicit] if self._explicit is not None else configured_sources(self._profile)
        for source in sources:
            if source.bound_to is None and self._explicit is not None:
                return source
            if source.bound_to is not None and source.bound_to == self._target:
                return source
        if not sources:
            raise AuthError(
                summary="No 3DLabs token is configured, so nothing was sent.",
                hint="Paste a token or API key in ComfyUI's settings (3DLabs > Token), or set THREEDLABS_TOKEN "
                "or THREEDLABS_TOKEN_COMMAND. No account? Choose 'sandbox' as the base URL in the 3DLabs "
                "settings to try the nodes with made-up content.",
            )
        raise AuthError(mismatch_problem(sources[0], self._target), hint="Nothing was sent.",
                        summary=f"No 3DLabs token is configured for {self._target}.")

    def get(self) -> str:
        with self._lock:
            source = self._source()
            if source.kind == "token":
                register_secret(source.value)
                return _sendable(source.value, source)
            if self._cached and self._cached_from == source:
                exp = jwt_expiry(self._cached)
                if exp is None or exp - self._clock() > REFRESH_MARGIN_SECONDS:
                    register_secret(self._cached)  # in use, so among the newest that redaction keeps masking
                    return self._cached
            self._cached = _sendable(run_token_command(source), source)
            self._cached_from = source
            return self._cached

    def invalidate(self, token: str | None = None) -> bool:
        """Drop a cached command token after a 401; True if a retry with a fresh token makes sense."""
        with self._lock:
            try:
                source = self._source()
            except (AuthError, ConfigError):
                return False
            if source.kind != "command":
                return False
            if token is None or token == self._cached:
                self._cached = None
            return True


# --- the token command ------------------------------------------------------------------------


def _shell_argv(command: str) -> list[str] | None:
    """How to run ``command`` in a shell (users write pipelines there); None: let Popen's shell do it."""
    return ["/bin/sh", "-c", command] if os.name == "posix" else None


def run_token_command(source: TokenSource) -> str:
    """Run a token command and return the last line it printed; ConfigErrors never quote either.

    Every error is raised outside any ``except`` block, so that neither the command line nor its
    output can ride along as ``__context__``.
    """
    what = f"The token command ({source.origin})"
    argv = _shell_argv(source.value)
    try:
        proc = subprocess.Popen(argv or source.value, shell=argv is None, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=argv is not None)
    except OSError as exc:
        proc, why = None, exc.strerror or type(exc).__name__
    if proc is None:
        raise ConfigError(f"{what} could not start ({why})")
    outcome, stdout, stderr = _collect(proc, posix=argv is not None)
    if outcome == "timeout":
        raise ConfigError(f"{what} did not finish within {COMMAND_TIMEOUT_SECONDS:g} s; "
                          "it was stopped and its output discarded")
    if outcome == "too-big":
        raise ConfigError(f"{what} printed more than {MAX_COMMAND_OUTPUT // 1024} KiB; "
                          "it was stopped and its output discarded",
                          hint="The command must print the token (a few KiB at most) as its last line.")
    text = stdout.decode("utf-8", errors="replace").strip()
    token = text.splitlines()[-1].strip() if text else ""
    if token:
        register_secret(token)
    if proc.returncode != 0 or not token:
        # Mask what may be a secret: long words of the command line, long unbroken words of stderr.
        said = stderr.decode("utf-8", errors="replace").strip()
        for word in sorted(set(re.split(r"[\s=\"':]+", source.value)), key=len, reverse=True):
            if len(word) >= 8:
                said = said.replace(word, "***")
        said = re.sub(r"\S{20,}", "***", redact(said))[:300]
        raise ConfigError(f"{what} exited with status {proc.returncode} "
                          f"and printed {'a token' if token else 'no token'}" + (f": {said}" if said else ""))
    return token


def _collect(proc: subprocess.Popen, posix: bool) -> tuple[str, bytes, bytes]:
    """Wait for a token command: ("ok" | "timeout" | "too-big", stdout, stderr).

    Reads at most MAX_COMMAND_OUTPUT bytes and kills the whole process group at the deadline or
    past the cap; what a killed command printed is never used, nor kept.
    """
    out, err = bytearray(), bytearray()
    too_big = threading.Event()

    def pump(stream, buf: bytearray, limit: int) -> None:
        with suppress(OSError, ValueError):
            while chunk := stream.read1(8192):
                room = limit - len(buf)
                buf += chunk[:max(room, 0)]
                if buf is out and len(chunk) > room:
                    too_big.set()
                    return

    readers = [threading.Thread(target=pump, args=(proc.stdout, out, MAX_COMMAND_OUTPUT),
                                name="3dlabs-token-out", daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err, _STDERR_KEPT),
                                name="3dlabs-token-err", daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    readers[0].join(COMMAND_TIMEOUT_SECONDS)  # it ends with the output, or past the cap
    if not too_big.is_set():
        with suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    done = proc.poll() is not None and not readers[0].is_alive()
    outcome = "too-big" if too_big.is_set() else "ok" if done else "timeout"
    if outcome != "ok":
        with suppress(OSError):
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and whatever it started
            else:
                proc.kill()
    for reader, stream in zip(readers, (proc.stdout, proc.stderr)):
        reader.join(1.0)
        if not reader.is_alive():  # a reader still blocked (an escaped grandchild) keeps its pipe: closing would wait
            with suppress(OSError):
                stream.close()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    if outcome != "ok":
        out[:] = b"\0" * len(out)
        return outcome, b"", b""
    return outcome, bytes(out), bytes(err)
