"""The pack's server routes for web/: status, token, settings, workspaces, projects, test connection.

Mounted by :func:`register` on ComfyUI's PromptServer under ``/3dlabs/...`` (also served as ``/api/3dlabs/...``);
:func:`add_routes` attaches them to any ``RouteTableDef``, so the tests run them without ComfyUI. Each route is
a blocking function that ``routes_guard`` runs in a thread after checking who calls; it answers in JSON.
The token goes in, never out: answers carry ``describe_token()`` (configured, source, last 4), and a token
stays bound to the API origin it was saved for. Only the top-level ``__init__`` imports this module (it
imports aiohttp), and only when ComfyUI's PromptServer exists.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from aiohttp import web

from . import clients, sandbox_bridge
from .api import budget, config, urls
from .api.auth import describe_token
from .api.errors import ConfigError, ThreeDLabsError
from .api.redaction import redact, register_secret
from .routes_guard import Refused, guarded, origin_required_for

PREFIX = "/3dlabs"
SANDBOX_CHOICE = "sandbox"
MAX_TOKEN_CHARS = 16384
MAX_JOBS_LIMIT = 10000
# Environment variables win over the config file; the UI names the ones that are set (never values).
ENV_OVERRIDES = ("THREEDLABS_BASE_URL", "THREEDLABS_TOKEN", "THREEDLABS_TOKEN_COMMAND", "THREEDLABS_WORKSPACE_ID",
                 "THREEDLABS_PROFILE", "THREEDLABS_MAX_JOBS", "THREEDLABS_MAX_JOBS_PER_HOUR",
                 "THREEDLABS_MAX_JOBS_PER_DAY", "THREEDLABS_DRY_RUN")
SETTINGS_FIELDS = ("base_url", "workspace_id", "dry_run", "max_jobs", "max_jobs_per_hour", "max_jobs_per_day")
# Where the token may go and how much may be spent: from beyond this machine only a browser page may change them.
ORIGIN_FIELDS = ("base_url", "max_jobs_per_hour", "max_jobs_per_day")


def status_snapshot() -> dict:
    """Everything the settings panel shows; never the token."""
    data = config.read_config_file()
    profile = config.active_profile_name(data)
    prof = config.read_profile(profile, data)
    section = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    chosen = bool(section.get("use_sandbox"))
    in_use = sandbox_bridge.sandbox_chosen()
    server = sandbox_bridge.running()
    sandbox_url = server.api_url if server is not None else None
    current, problem = None, None
    try:
        current = config.load_settings()
    except ConfigError as err:
        problem = err.message
    if in_use:
        base_url, source = sandbox_url, "bundled sandbox"
    else:
        base_url, source = (current.base_url, current.base_url_source) if current else (None, None)
    return {
        "base_url": base_url,
        "base_url_source": source,
        "base_url_choice": SANDBOX_CHOICE if chosen else ("custom" if prof.get("base_url") else "default"),
        "configured_base_url": prof.get("base_url"),
        "default_base_url": config.DEFAULT_BASE_URL,
        "settings_error": problem,
        "sandbox": {"chosen": chosen, "in_use": in_use, "running": server is not None, "url": sandbox_url},
        "workspace_id": current.workspace_id if current else prof.get("workspace_id"),
        "configured_workspace_id": prof.get("workspace_id"),
        "profile": profile,
        # The user's token as it stands for the configured URL (the sandbox has its own).
        "token": describe_token(profile, base_url=current.base_url if current else None),
        "dry_run": current.dry_run if current else bool(section.get("dry_run")),
        "max_jobs": current.max_jobs if current else config.DEFAULT_MAX_JOBS,
        "budget": _budget(current),
        "env_overrides": [name for name in ENV_OVERRIDES if os.environ.get(name, "").strip()],
    }


def _budget(current: config.Settings | None) -> dict:
    """The spend budget across prompts, with what the journal says is spent and left in each window."""
    from .api.journal import Journal  # the journal (sqlite) loads on first use

    limits = {"hour": current.max_jobs_per_hour if current else config.DEFAULT_MAX_JOBS_PER_HOUR,
              "day": current.max_jobs_per_day if current else config.DEFAULT_MAX_JOBS_PER_DAY}
    return budget.usage(Journal(), limits)


def _text(body: dict, key: str, refusal: str) -> str:
    """A string field of a body, stripped; null is ""."""
    value = "" if body[key] is None else body[key]
    if not isinstance(value, str):
        raise Refused(400, refusal)
    return value.strip()


def _save(profile_changes: dict, settings_changes: dict | None = None) -> dict:
    """One locked read-modify-write of the config file; the notice to add to the answer, if any."""
    written = config.update_config(profile_changes=profile_changes, settings_changes=settings_changes)
    clients.reset_clients()
    notice = written.notice()
    return {"notice": notice} if notice else {}


def post_token(body: dict) -> dict:
    """Save (or, with "" or null, clear) the token for the URL in use now: it is bound to that origin."""
    if set(body) != {"token"}:
        raise Refused(400, 'The body must be {"token": "..."} ("" or null clears the token).')
    token = _text(body, "token", "The token must be a string (or null to clear it).")
    if len(token) > MAX_TOKEN_CHARS:
        raise Refused(400, f"The token is longer than {MAX_TOKEN_CHARS} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise Refused(400, "The token must be one word: no spaces, tabs or line breaks.")
    register_secret(token)  # from now on every message and log line masks it
    if token and sandbox_bridge.sandbox_chosen():
        # A token is bound to the base URL it will be sent to; with the sandbox in use that would be the
        # profile's hidden URL, which anyone who could change the settings may have set.
        raise Refused(409, "The bundled sandbox is in use: it needs no token, so none was saved. To use your "
                           "3DLabs token, choose the 3DLabs service (or your own URL) as the base URL first, "
                           "then save the token: it is bound to that address, which the panel shows.")
    notice = _save({"token": token or None})
    return describe_token() | notice


def _checked_url(url: str) -> str:
    try:
        url = urls.normalize_base_url(url)
    except ConfigError as err:
        raise Refused(400, " ".join(p for p in (err.detail, err.hint) if p) or err.message) from None
    if "@" in urlsplit(url).netloc:
        # The base URL is shown to every client and mirrored into ComfyUI's settings.
        raise Refused(400, "The base URL must not contain a user name or password; set the token instead.")
    return url


def checked_settings(body: dict) -> tuple[dict, dict]:
    """The changes of a settings body, for the active profile and for the "settings" section.

    Raises Refused for the first bad field. The base URL and workspace go to the profile, the rest
    (and the sandbox choice) to "settings".
    """
    unknown = sorted(set(body) - set(SETTINGS_FIELDS))
    if unknown or not body:
        said = f"Unknown setting {unknown[0]!r}" if unknown else "No setting given"
        raise Refused(400, f"{said}; known: {', '.join(SETTINGS_FIELDS)}.")
    profile: dict = {}
    section: dict = {}
    if "base_url" in body:
        url = _text(body, "base_url", 'base_url must be a string: an http(s) URL, "" for the default, or "sandbox".')
        section["use_sandbox"] = url.lower() == SANDBOX_CHOICE
        if not section["use_sandbox"]:
            profile["base_url"] = _checked_url(url) if url else None  # none: the default
    if "workspace_id" in body:
        ws = _text(body, "workspace_id", 'workspace_id must be a string: an id, or "" for none.')
        try:
            profile["workspace_id"] = config.check_workspace_id(ws, "the settings")
        except ConfigError:
            raise Refused(400, f'workspace_id must be an id of {config.WORKSPACE_ID_RULE}, or "" for none.') from None
    if "dry_run" in body:
        if not isinstance(body["dry_run"], bool):
            raise Refused(400, "dry_run must be true or false.")
        section["dry_run"] = body["dry_run"]
    for field in ("max_jobs", "max_jobs_per_hour", "max_jobs_per_day"):
        if field not in body:
            continue
        n = body[field]
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        limit = MAX_JOBS_LIMIT * (24 if field == "max_jobs_per_day" else 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
            raise Refused(400, f"{field} must be a whole number from 1 to {limit}.")
        section[field] = n
    return profile, section


def post_settings(body: dict) -> dict:
    profile, section = checked_settings(body)
    # A base URL change leaves the token bound to the origin it was saved for (``config`` pins an older
    # token to its old URL first).
    notice = _save(profile, section)
    if section.get("use_sandbox") and sandbox_bridge.sandbox_chosen():
        try:
            sandbox_bridge.ensure_started()
        except OSError as err:
            raise Refused(500, f"The bundled sandbox could not start: {err}") from None
    return status_snapshot() | notice


def list_workspaces() -> list[dict]:
    return [{"id": w.id, "name": w.name} for w in clients.client_for().list_workspaces()]


def list_projects() -> list[dict]:
    return [{"id": p.id, "name": p.name, "created": p.created} for p in clients.client_for().list_projects()]


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


def connection_test(_body: dict) -> dict:
    """List workspaces with the current settings; the outcome in words, for the settings panel."""
    try:
        current = clients.settings()
        spaces = clients.client_for(current).list_workspaces()
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


# (method, path, work): a POST's work takes the JSON body.
ROUTES = (
    ("GET", "/status", status_snapshot),
    ("POST", "/token", post_token),
    ("POST", "/settings", origin_required_for(ORIGIN_FIELDS, post_settings)),
    ("GET", "/workspaces", list_workspaces),
    ("GET", "/projects", list_projects),
    ("POST", "/test", connection_test),
)


def add_routes(routes: web.RouteTableDef) -> web.RouteTableDef:
    """Attach every route, guarded (``routes_guard.guarded``), to ``routes``."""
    for method, path, work in ROUTES:
        routes.route(method, PREFIX + path)(guarded(method, work))
    return routes


_registered: set[int] = set()


def register(server) -> None:
    """Mount the routes on ComfyUI's PromptServer (its ``routes`` table); safe to call twice."""
    if id(server) in _registered:
        return
    add_routes(server.routes)
    _registered.add(id(server))
