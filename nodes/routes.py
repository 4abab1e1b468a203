"""The pack's server routes for web/: status, token, settings, workspaces, projects, test connection.

Mounted on ComfyUI's PromptServer by :func:`register` under ``/3dlabs/...`` (ComfyUI serves them
under ``/api/3dlabs/...`` too). The handlers are plain aiohttp handlers, attachable to any
``RouteTableDef`` with :func:`add_routes`, so the tests run them without ComfyUI. Who may call
them (Host, Origin, JSON only) and how errors become JSON is ``routes_guard``'s job.

Rules:
- The token goes in, never out: answers carry ``describe_token()`` (configured, source, last 4).
- A token belongs to the API origin it was saved for: changing the base URL here never carries it
  over; the status then says to save it again for the new URL.
- Blocking work (the config file, the 3DLabs client, starting the sandbox) runs in a thread.

This module imports aiohttp, so only the top-level ``__init__`` imports it, and only when ComfyUI's
PromptServer exists (ComfyUI has aiohttp loaded by then).
"""

from __future__ import annotations

import asyncio
import logging
import os
from urllib.parse import urlsplit

from aiohttp import web

from . import runtime, sandbox_bridge
from .api import config
from .api.auth import describe_token
from .api.errors import ConfigError, ThreeDLabsError, redact, register_secret
from .routes_guard import Refused, json_body, json_errors

log = logging.getLogger("3dlabs")

PREFIX = "/3dlabs"
SANDBOX_CHOICE = "sandbox"
MAX_TOKEN_CHARS = 16384
MAX_JOBS_LIMIT = 10000
# Environment variables win over the config file; the UI names the ones that are set (never values).
ENV_OVERRIDES = ("THREEDLABS_BASE_URL", "THREEDLABS_TOKEN", "THREEDLABS_TOKEN_COMMAND", "THREEDLABS_WORKSPACE_ID",
                 "THREEDLABS_PROFILE", "THREEDLABS_MAX_JOBS", "THREEDLABS_DRY_RUN")
SETTINGS_FIELDS = ("base_url", "workspace_id", "dry_run", "max_jobs")


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
    except ConfigError as err:
        current = None
        problem = err.message
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
        # The user's token as it stands for the configured URL (the sandbox has its own).
        "token": describe_token(profile, base_url=current.base_url if current is not None else None),
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
    """Save (or clear) the token for the URL in use now: it is bound to that origin from now on."""
    written = config.update_config(profile_changes={"token": token or None})
    runtime.reset_clients()
    answer = describe_token()
    if written.notice():
        answer["notice"] = written.notice()
    return answer


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
                raise Refused(400, " ".join(p for p in (err.detail, err.hint) if p) or err.message) from None
            if "@" in urlsplit(url).netloc:
                # The base URL is shown to every client and mirrored into ComfyUI's settings.
                raise Refused(400, "The base URL must not contain a user name or password; set the token instead.")
        changes["base_url"] = SANDBOX_CHOICE if url.lower() == SANDBOX_CHOICE else url
    if "workspace_id" in body:
        ws = body["workspace_id"]
        if ws is None:
            ws = ""
        if not isinstance(ws, str):
            raise Refused(400, 'workspace_id must be a string: an id, or "" for none.')
        try:
            changes["workspace_id"] = config.check_workspace_id(ws, "the settings") or ""
        except ConfigError:
            raise Refused(400, f'workspace_id must be an id of {config.WORKSPACE_ID_RULE}, or "" for none.') from None
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


def apply_settings(changes: dict) -> str | None:
    """Write validated changes: base URL and workspace to the active profile, the rest to "settings".

    One locked read-modify-write. A base URL change leaves the token bound to the origin it was
    saved for (``config`` pins an older token to its old URL first). Returns a notice to show, if any.
    """
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
    written = config.update_config(profile_changes=profile_changes, settings_changes=section_changes)
    runtime.reset_clients()
    return written.notice()


async def post_settings(request: web.Request) -> web.Response:
    changes = checked_settings(await json_body(request))
    notice = await asyncio.to_thread(apply_settings, changes)
    if changes.get("base_url") == SANDBOX_CHOICE and sandbox_bridge.sandbox_chosen():
        try:
            await asyncio.to_thread(sandbox_bridge.ensure_started)
        except OSError as err:
            raise Refused(500, f"The bundled sandbox could not start: {err}") from None
    status = await asyncio.to_thread(status_snapshot)
    if notice:
        status["notice"] = notice
    return web.json_response(status)


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
    token = describe_token(current.profile, base_url=current.base_url)
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
