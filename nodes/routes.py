"""The pack's server routes for web/: status, token, settings, workspaces, projects, test connection.

Mounted on ComfyUI's PromptServer by :func:`register` under ``/3dlabs/...`` (ComfyUI serves them
under ``/api/3dlabs/...`` too). The handlers are plain aiohttp handlers, attachable to any
``RouteTableDef`` with :func:`add_routes`, so the tests run them without ComfyUI.

Rules:
- The token goes in, never out: answers carry ``describe_token()`` (configured, source, last 4).
- Every route answers same-origin requests only (an ``Origin`` naming another host:port, or
  ``Sec-Fetch-Site: cross-site``, is refused); POSTs take ``application/json`` only, which a
  cross-site form cannot send without a CORS preflight.
- Blocking work (the config file, the 3DLabs client, starting the sandbox) runs in a thread.
- Every error is JSON ``{"error": "<message>"}`` with a fitting status; typed errors carry their
  own (redacted) message, and nothing else ever reaches the answer: no traceback, no token.

This module imports aiohttp, so only the top-level ``__init__`` imports it, and only when ComfyUI's
PromptServer exists (ComfyUI has aiohttp loaded by then).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from urllib.parse import urlsplit

from aiohttp import web

from . import runtime, sandbox_bridge
from .api import config
from .api.auth import describe_token
from .api.errors import (
    AuthError,
    ConfigError,
    ForbiddenError,
    NetworkError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    ThreeDLabsError,
    ValidationError,
    redact,
    register_secret,
)

log = logging.getLogger("3dlabs")

PREFIX = "/3dlabs"
SANDBOX_CHOICE = "sandbox"
MAX_TOKEN_CHARS = 16384
MAX_ID_CHARS = 200
MAX_JOBS_LIMIT = 10000
# Environment variables win over the config file; the UI names the ones that are set (never values).
ENV_OVERRIDES = ("THREEDLABS_BASE_URL", "THREEDLABS_TOKEN", "THREEDLABS_TOKEN_COMMAND", "THREEDLABS_WORKSPACE_ID",
                 "THREEDLABS_PROFILE", "THREEDLABS_MAX_JOBS", "THREEDLABS_DRY_RUN")
SETTINGS_FIELDS = ("base_url", "workspace_id", "dry_run", "max_jobs")

# One writer at a time: the token and settings routes both read-modify-write the config file.
_config_lock = threading.Lock()


class Refused(Exception):
    """A request the routes answer with ``{"error": message}`` and ``status``, without running it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- errors as JSON ---------------------------------------------------------------------------


def status_for(err: ThreeDLabsError) -> int:
    """The HTTP status a typed error answers with (the 3DLabs answer's class, seen through this proxy)."""
    if isinstance(err, (ConfigError, ValidationError)):
        return 400
    if isinstance(err, AuthError):
        return 401
    if isinstance(err, ForbiddenError):
        return 403
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, OutOfCreditsError):
        return 402
    if isinstance(err, RateLimitedError):
        return 429
    if isinstance(err, NetworkError):
        return 504
    return 502


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": redact(message)}, status=status)


def json_errors(handler):
    """Every outcome of ``handler`` is JSON: refusals, typed errors and surprises alike."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            check_same_origin(request)
            return await handler(request)
        except Refused as err:
            return error_response(err.status, err.message)
        except ThreeDLabsError as err:
            return error_response(status_for(err), err.message)
        except web.HTTPException as err:  # aiohttp's own refusals (a body over the size limit...)
            return error_response(err.status, err.reason or "The request was refused.")
        except Exception as err:  # noqa: BLE001  an answer, not a traceback, goes to the browser
            # The type and a redacted message only: a traceback could quote a token-bearing value.
            log.warning("3DLabs: %s %s failed: %s", request.method, request.path,
                        redact(f"{type(err).__name__}: {err}"))
            return error_response(500, f"The 3DLabs route failed ({type(err).__name__}); see the ComfyUI log.")

    return wrapped


# --- same-origin and JSON checks -------------------------------------------------------------


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        return netloc.lower(), None
    if port is None:
        port = 443 if scheme == "https" else 80
    return (parts.hostname or "").lower(), port


def check_same_origin(request: web.Request) -> None:
    """Refuse a request a browser made for another site (CSRF, or a cross-site read)."""
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        raise Refused(403, "Refused: a cross-site request to the 3DLabs settings routes.")
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser's cross-origin request (curl, scripts, same-origin GETs)
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refused(403, f"Refused: the request's Origin {origin!r} is not this ComfyUI.")
    wanted = _host_port(parts.netloc, parts.scheme)
    # Behind a reverse proxy the Host header names the backend; X-Forwarded-Host names what the
    # browser saw. A cross-site page cannot set that header without a CORS preflight, so it is safe.
    hosts = [h.strip() for h in (request.headers.get("X-Forwarded-Host", "").split(",")[:1]) if h.strip()]
    hosts.append(request.host or "")
    if not any(_host_port(host, parts.scheme) == wanted for host in hosts if host):
        raise Refused(403, f"Refused: the request comes from {origin}, not from this ComfyUI.")


async def json_body(request: web.Request) -> dict:
    if request.content_type != "application/json":
        raise Refused(415, "The 3DLabs routes take JSON only (Content-Type: application/json).")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Refused(400, "The request body must be a JSON object.")
    return body


# --- status -----------------------------------------------------------------------------------


def status_snapshot() -> dict:
    """Everything the settings panel shows; never the token. Reads the config file (blocking)."""
    data = config.read_config_file()
    profile = config.active_profile_name(data)
    prof = config.read_profile(profile, data)
    section = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    chosen = bool(section.get("use_sandbox"))
    in_use = sandbox_bridge.sandbox_chosen()
    server = sandbox_bridge.running()
    sandbox_url = server.api_url if server is not None else None
    problem = None
    try:
        current = config.load_settings()
    except (ConfigError, ValueError, TypeError) as err:
        current = None
        problem = err.message if isinstance(err, ConfigError) else f"The config file has a bad value: {err}"
    if in_use:
        base_url, source = sandbox_url, "bundled sandbox"
    elif current is not None:
        base_url, source = current.base_url, current.base_url_source
    else:
        base_url, source = None, None
    return {
        "base_url": base_url,
        "base_url_source": source,
        "base_url_choice": SANDBOX_CHOICE if chosen else ("custom" if prof.get("base_url") else "default"),
        "configured_base_url": prof.get("base_url"),
        "default_base_url": config.DEFAULT_BASE_URL,
        "settings_error": problem,
        "sandbox": {"chosen": chosen, "in_use": in_use, "running": server is not None, "url": sandbox_url},
        "workspace_id": current.workspace_id if current is not None else prof.get("workspace_id"),
        "configured_workspace_id": prof.get("workspace_id"),
        "profile": profile,
        "token": describe_token(profile),
        "dry_run": current.dry_run if current is not None else bool(section.get("dry_run")),
        "max_jobs": current.max_jobs if current is not None else config.DEFAULT_MAX_JOBS,
        "env_overrides": [name for name in ENV_OVERRIDES if os.environ.get(name, "").strip()],
    }


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(status_snapshot))


# --- token ------------------------------------------------------------------------------------


def checked_token(body: dict) -> str:
    """The token of a ``{"token": ...}`` body, stripped; "" means clear. Raises Refused."""
    if set(body) != {"token"}:
        raise Refused(400, 'The body must be {"token": "..."} ("" or null clears the token).')
    token = body["token"]
    if token is None:
        return ""
    if not isinstance(token, str):
        raise Refused(400, "The token must be a string (or null to clear it).")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise Refused(400, f"The token is longer than {MAX_TOKEN_CHARS} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise Refused(400, "The token must be one word: no spaces, tabs or line breaks.")
    return token


def store_token(token: str) -> dict:
    with _config_lock:
        config.update_profile({"token": token or None})
    runtime.reset_clients()
    return describe_token()


async def post_token(request: web.Request) -> web.Response:
    token = checked_token(await json_body(request))
    if token:
        register_secret(token)  # from now on every message and log line masks it
    return web.json_response(await asyncio.to_thread(store_token, token))


# --- settings ---------------------------------------------------------------------------------


def checked_settings(body: dict) -> dict:
    """Validated changes from a settings body; raises Refused with a message for the first bad field."""
    unknown = sorted(set(body) - set(SETTINGS_FIELDS))
    if unknown:
        raise Refused(400, f"Unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS_FIELDS)}.")
    if not body:
        raise Refused(400, f"No setting given; known: {', '.join(SETTINGS_FIELDS)}.")
    changes: dict = {}
    if "base_url" in body:
        url = body["base_url"]
        if url is None:
            url = ""
        if not isinstance(url, str):
            raise Refused(400, 'base_url must be a string: an http(s) URL, "" for the default, or "sandbox".')
        url = url.strip()
        if url and url.lower() != SANDBOX_CHOICE:
            try:
                url = config.normalize_base_url(url)
            except ConfigError as err:
                raise Refused(400, err.detail or err.message) from None
            if "@" in urlsplit(url).netloc:
                # The base URL is shown to every client and mirrored into ComfyUI's settings.
                raise Refused(400, "The base URL must not contain a user name or password; set the token instead.")
        changes["base_url"] = SANDBOX_CHOICE if url.lower() == SANDBOX_CHOICE else url
    if "workspace_id" in body:
        ws = body["workspace_id"]
        if ws is None:
            ws = ""
        if not isinstance(ws, str) or len(ws.strip()) > MAX_ID_CHARS or any(ch.isspace() for ch in ws.strip()):
            raise Refused(400, f"workspace_id must be an id without spaces (at most {MAX_ID_CHARS} characters), "
                               'or "" for none.')
        changes["workspace_id"] = ws.strip()
    if "dry_run" in body:
        if not isinstance(body["dry_run"], bool):
            raise Refused(400, "dry_run must be true or false.")
        changes["dry_run"] = body["dry_run"]
    if "max_jobs" in body:
        n = body["max_jobs"]
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_JOBS_LIMIT:
            raise Refused(400, f"max_jobs must be a whole number from 1 to {MAX_JOBS_LIMIT}.")
        changes["max_jobs"] = n
    return changes


def apply_settings(changes: dict) -> None:
    """Write validated changes: base URL and workspace to the active profile, the rest to "settings"."""
    with _config_lock:
        profile_changes = {}
        section_changes = {}
        if "base_url" in changes:
            sandbox = changes["base_url"] == SANDBOX_CHOICE
            section_changes["use_sandbox"] = sandbox
            if not sandbox:
                profile_changes["base_url"] = changes["base_url"] or None  # "" removes it: the default
        if "workspace_id" in changes:
            profile_changes["workspace_id"] = changes["workspace_id"] or None
        for key in ("dry_run", "max_jobs"):
            if key in changes:
                section_changes[key] = changes[key]
        if profile_changes:
            config.update_profile(profile_changes)
        if section_changes:
            data = config.read_config_file()
            section = data.get("settings") if isinstance(data.get("settings"), dict) else {}
            section.update(section_changes)
            data["settings"] = section
            config.write_config_file(data)
    runtime.reset_clients()


async def post_settings(request: web.Request) -> web.Response:
    changes = checked_settings(await json_body(request))
    await asyncio.to_thread(apply_settings, changes)
    if changes.get("base_url") == SANDBOX_CHOICE and sandbox_bridge.sandbox_chosen():
        try:
            await asyncio.to_thread(sandbox_bridge.ensure_started)
        except OSError as err:
            raise Refused(500, f"The bundled sandbox could not start: {err}") from None
    return web.json_response(await asyncio.to_thread(status_snapshot))


# --- reading 3DLabs ---------------------------------------------------------------------------


def list_workspaces() -> list[dict]:
    return [{"id": w.id, "name": w.name} for w in runtime.client_for().list_workspaces()]


def list_projects() -> list[dict]:
    return [{"id": p.id, "name": p.name, "created": p.created} for p in runtime.client_for().list_projects()]


async def get_workspaces(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(list_workspaces))


async def get_projects(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(list_projects))


def _who(current: config.Settings) -> str:
    if current.base_url_source == "bundled sandbox":
        return "the sandbox's own token (SANDBOX: made-up content, no account)"
    token = describe_token(current.profile)
    if not token["configured"]:
        return "nobody (no token)"
    if token["kind"] == "command":
        return f"a token from the token command ({token['source']})"
    ending = f"ending in …{token['last4']} " if token["last4"] else ""
    return f"the token {ending}({token['source']})"


def connection_test() -> dict:
    """List workspaces with the current settings; the outcome in words, for the settings panel."""
    try:
        current = runtime.settings()
        spaces = runtime.client_for(current).list_workspaces()
    except ThreeDLabsError as err:
        return {"ok": False, "message": err.message}
    except OSError as err:  # the sandbox could not start
        return {"ok": False, "message": redact(f"The bundled sandbox could not start: {err}")}
    n = len(spaces)
    names = ", ".join((w.name or w.id) for w in spaces[:5]) + (", …" if n > 5 else "")
    message = (f"Connected to {current.base_url} as {_who(current)}: {n} workspace{'' if n == 1 else 's'}"
               + (f" ({names})" if names else "") + ".")
    if current.workspace_id and all(w.id != current.workspace_id for w in spaces):
        message += f" The chosen workspace {current.workspace_id} is not among them."
    return {"ok": True, "message": redact(message), "base_url": current.base_url, "workspaces": n}


async def post_test(request: web.Request) -> web.Response:
    await json_body(request)
    return web.json_response(await asyncio.to_thread(connection_test))


# --- registration -----------------------------------------------------------------------------

ROUTES = (
    ("GET", "/status", get_status),
    ("POST", "/token", post_token),
    ("POST", "/settings", post_settings),
    ("GET", "/workspaces", get_workspaces),
    ("GET", "/projects", get_projects),
    ("POST", "/test", post_test),
)


def add_routes(routes: web.RouteTableDef) -> web.RouteTableDef:
    """Attach every handler (wrapped in the JSON and same-origin rules) to ``routes``."""
    for method, path, handler in ROUTES:
        routes.route(method, PREFIX + path)(json_errors(handler))
    return routes


_registered: set[int] = set()


def register(server) -> None:
    """Mount the routes on ComfyUI's PromptServer (its ``routes`` table); safe to call twice."""
    if id(server) in _registered:
        return
    add_routes(server.routes)
    _registered.add(id(server))
