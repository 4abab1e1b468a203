"""Where the client's settings come from: base URL, workspace, profiles, limits and the user dir.

Order of precedence: explicit arguments, then environment variables (``THREEDLABS_*``), then the
active profile of the config file in the user directory, then defaults. Nothing here raises at
import time and nothing here performs network I/O. The config file may hold a token, so it is
written with mode 0600 inside a 0700 directory and never echoed back whole.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

log = logging.getLogger("3dlabs")

DEFAULT_BASE_URL = "https://www.3dlabs.it.com/api"
DEFAULT_PROFILE = "default"
DEFAULT_MAX_JOBS = 50
DEFAULT_MAX_IN_FLIGHT = 8
CONFIG_DIRNAME = "3dlabs"
CONFIG_FILENAME = "config.json"
PROFILE_FIELDS = ("base_url", "workspace_id", "token", "token_command")

_default_user_dir: Path | None = None


def set_default_user_dir(path: str | os.PathLike | None) -> None:
    """Called by the ComfyUI adapter with ComfyUI's user directory (the api layer cannot import it)."""
    global _default_user_dir
    _default_user_dir = Path(path) if path else None


def user_dir() -> Path:
    """The pack's own folder for its config file and job journal."""
    env = os.environ.get("THREEDLABS_USER_DIR")
    if env:
        return Path(env).expanduser() / CONFIG_DIRNAME
    if _default_user_dir is not None:
        return _default_user_dir / CONFIG_DIRNAME
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "comfyui-3dlabs"


def config_path() -> Path:
    return user_dir() / CONFIG_FILENAME


def normalize_base_url(url: str) -> str:
    """Return the API root in its published form, ending in ``/api``.

    The published base URL ends in ``/api`` and the published paths begin with ``/api``; both
    mean the same prefix, so a bare origin gets ``/api`` appended and a doubled one is collapsed.
    """
    raw = (url or "").strip()
    if not raw:
        raise ConfigError("THREEDLABS_BASE_URL is empty.")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"The base URL {raw!r} is not an http(s) URL such as {DEFAULT_BASE_URL}.")
    path = parts.path.rstrip("/")
    while path.endswith("/api/api"):
        path = path[: -len("/api")]
    if not path.endswith("/api"):
        path = path + "/api"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        log.warning("3DLabs: ignoring %s=%r (not a whole number)", name, value)
        return default


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# --- the config file --------------------------------------------------------------------------


def read_config_file(path: Path | None = None) -> dict:
    """The config file as a dict; a missing or broken file reads as empty (logged, never raised)."""
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("3DLabs: cannot read %s (%s); using defaults", path, type(exc).__name__)
        return {}
    return data if isinstance(data, dict) else {}


def write_config_file(data: dict, path: Path | None = None) -> Path:
    """Write atomically with mode 0600 (the file can hold a token)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path.parent, 0o700)
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.chmod(path, 0o600)
    return path


def active_profile_name(data: dict | None = None) -> str:
    env = os.environ.get("THREEDLABS_PROFILE", "").strip()
    if env:
        return env
    data = read_config_file() if data is None else data
    name = data.get("active_profile")
    return name if isinstance(name, str) and name else DEFAULT_PROFILE


def read_profile(name: str | None = None, data: dict | None = None) -> dict:
    data = read_config_file() if data is None else data
    name = name or active_profile_name(data)
    profiles = data.get("profiles")
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(profile, dict):
        return {}
    return {k: v for k, v in profile.items() if k in PROFILE_FIELDS and isinstance(v, str) and v}


def update_profile(changes: dict, name: str | None = None) -> Path:
    """Set (or, with a value of None or "", remove) fields of one profile in the config file."""
    data = read_config_file()
    name = name or active_profile_name(data)
    profiles = data.setdefault("profiles", {})
    if not isinstance(profiles, dict):
        profiles = data["profiles"] = {}
    profile = profiles.setdefault(name, {})
    for key, value in changes.items():
        if key not in PROFILE_FIELDS:
            raise ConfigError(f"Unknown profile field {key!r}; known fields: {', '.join(PROFILE_FIELDS)}.")
        if value in (None, ""):
            profile.pop(key, None)
        else:
            profile[key] = str(value)
    data.setdefault("active_profile", name)
    return write_config_file(data)


# --- resolved settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    base_url: str = DEFAULT_BASE_URL
    workspace_id: str | None = None
    profile: str = DEFAULT_PROFILE
    max_jobs: int = DEFAULT_MAX_JOBS
    dry_run: bool = False
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    base_url_source: str = "default"


def load_settings(*, base_url: str | None = None, workspace_id: str | None = None,
                  profile: str | None = None) -> Settings:
    """Resolve settings now (env and file are re-read on every call: users edit them live)."""
    data = read_config_file()
    profile_name = profile or active_profile_name(data)
    prof = read_profile(profile_name, data)
    if base_url:
        url, source = base_url, "argument"
    elif os.environ.get("THREEDLABS_BASE_URL", "").strip():
        url, source = os.environ["THREEDLABS_BASE_URL"], "env THREEDLABS_BASE_URL"
    elif prof.get("base_url"):
        url, source = prof["base_url"], f"profile {profile_name}"
    else:
        url, source = DEFAULT_BASE_URL, "default"
    ws = workspace_id or os.environ.get("THREEDLABS_WORKSPACE_ID", "").strip() or prof.get("workspace_id")
    settings_file = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    max_jobs = _env_int("THREEDLABS_MAX_JOBS", int(settings_file.get("max_jobs") or DEFAULT_MAX_JOBS))
    dry_run = _env_flag("THREEDLABS_DRY_RUN") or bool(settings_file.get("dry_run"))
    in_flight = _env_int("THREEDLABS_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)
    return Settings(
        base_url=normalize_base_url(url),
        workspace_id=ws or None,
        profile=profile_name,
        max_jobs=max(1, max_jobs),
        dry_run=dry_run,
        max_in_flight=max(1, min(64, in_flight)),
        base_url_source=source,
    )
