"""Where the client's settings come from: base URL, workspace, profiles, limits and the user dir.

Precedence: explicit arguments, then environment variables (``THREEDLABS_*``), then the active
profile of the config file, then defaults. Nothing here raises at import time or does network I/O.
Owns, besides, the check of the workspace id (one safe word: it ends up in a header) and the origin a
saved token is bound to (``token_origin`` in its profile). Which base URLs are accepted is ``urls``'s
job; reading, locking and writing the file itself is ``config_store``'s.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import config_store
from .config_store import ConfigWrite
from .errors import ConfigError
from .urls import DEFAULT_BASE_URL, api_origin, normalize_base_url, origin_or_none

log = logging.getLogger("3dlabs")

DEFAULT_PROFILE = "default"
DEFAULT_MAX_JOBS = 50
# The spend budget across prompts: far above a person making videos (a 5-minute short is ~70 jobs).
DEFAULT_MAX_JOBS_PER_HOUR = 200
DEFAULT_MAX_JOBS_PER_DAY = 1000
DEFAULT_MAX_IN_FLIGHT = 8
# Enough for 64 Flux images of about 1 Mpx with room to spare (a 5-minute plan has up to 60 scenes); as
# IMAGE and MASK a megapixel takes 16 MB, so the default holds a node's decoded images to about 1.6 GB.
DEFAULT_MAX_DECODED_MEGAPIXELS = 100
# token_origin: the API origin (scheme://host[:port]) the profile's token and token command belong to.
PROFILE_FIELDS = ("base_url", "workspace_id", "token", "token_command", "token_origin")
TOKEN_FIELDS = ("token", "token_command")
WORKSPACE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
WORKSPACE_ID_RULE = "1 to 200 characters from A-Z a-z 0-9 _ . : -"

_default_user_dir: Path | None = None


def set_default_user_dir(path: str | os.PathLike | None) -> None:
    """Called by the ComfyUI adapter with ComfyUI's user directory (the api layer cannot import it)."""
    global _default_user_dir
    _default_user_dir = Path(path) if path else None


def user_dir() -> Path:
    """The pack's own folder for its config file and job journal."""
    env = os.environ.get("THREEDLABS_USER_DIR")
    if env:
        return Path(env).expanduser() / "3dlabs"
    if _default_user_dir is not None:
        return _default_user_dir / "3dlabs"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "comfyui-3dlabs"


def config_path() -> Path:
    return user_dir() / "config.json"


# --- values that end up in HTTP (the base URL's own rules: urls) ----------------------------


def check_workspace_id(value: str | None, where: str) -> str | None:
    """The id stripped, None for empty; a ConfigError naming ``where`` for anything unsafe in a header."""
    ws = (value or "").strip()
    if not ws:
        return None
    if not WORKSPACE_ID_PATTERN.fullmatch(ws):
        raise ConfigError(f"The workspace id from {where} is not usable: it must be {WORKSPACE_ID_RULE}",
                          hint="Copy the id (not the name) of the workspace; nothing was sent.")
    return ws


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        log.warning("3DLabs: ignoring %s=%r (not a whole number)", name, value)
        return default


def _file_whole_number(section: dict, key: str, default: int, path: Path) -> int:
    """A whole number >= 1 from the config file's "settings" section, or a ConfigError naming both."""
    value = section.get(key)
    if value is None:
        return default
    number = value
    if (isinstance(value, str) and value.strip().isdigit()) or (isinstance(value, float) and value.is_integer()):
        number = int(value)  # is_integer(): not inf nor nan
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ConfigError(f"{path}: settings.{key} is {shown}, not a whole number of at least 1",
                          hint=f"Fix or remove {key} in that file, or set it in ComfyUI's settings (3DLabs section).")
    return number


# --- the config file and its profiles (stored by config_store) ----------------------------------


def read_config_file(path: Path | None = None) -> dict:
    """The config file as a dict; a missing or broken file reads as empty (logged, never raised)."""
    return config_store.read_config_file(path or config_path())


def active_profile_name(data: dict | None = None) -> str:
    if env := _env("THREEDLABS_PROFILE"):
        return env
    data = read_config_file() if data is None else data
    name = data.get("active_profile")
    return name if isinstance(name, str) and name else DEFAULT_PROFILE


def read_profile(name: str | None = None, data: dict | None = None) -> dict:
    data = read_config_file() if data is None else data
    name = name or active_profile_name(data)
    profiles = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
    profile = profiles.get(name) if isinstance(profiles.get(name), dict) else {}
    return {k: v for k, v in profile.items() if k in PROFILE_FIELDS and isinstance(v, str) and v}


def profile_token_origin(profile: dict) -> str | None:
    """The origin a profile's token belongs to: recorded when saved; for a token saved before origins
    were recorded, the profile's own base URL (or the official one). None if that URL is unusable."""
    return origin_or_none(profile.get("token_origin") or profile.get("base_url"))


def _dict_at(data: dict, key: str) -> dict:
    if not isinstance(data.get(key), dict):
        data[key] = {}
    return data[key]


def _apply_profile_changes(data: dict, changes: dict, name: str | None) -> None:
    unknown = [key for key in changes if key not in PROFILE_FIELDS]
    if unknown:
        raise ConfigError(f"Unknown profile field {unknown[0]!r}; known fields: {', '.join(PROFILE_FIELDS)}.")
    name = name or active_profile_name(data)
    profile = _dict_at(_dict_at(data, "profiles"), name)
    had_token = any(isinstance(profile.get(k), str) and profile.get(k) for k in TOKEN_FIELDS)
    if had_token and not profile.get("token_origin") and "base_url" in changes:
        # A token from before origins were recorded stays with the URL it was used with.
        if origin := profile_token_origin(profile):
            profile["token_origin"] = origin
    for key, value in changes.items():
        if value in (None, ""):
            profile.pop(key, None)
        else:
            profile[key] = str(value)
    if changes.get("token_origin"):
        profile["token_origin"] = api_origin(changes["token_origin"])
    elif any(changes.get(k) not in (None, "") for k in TOKEN_FIELDS):
        # Saved now, for the URL the client uses now (the environment's, else this profile's).
        profile["token_origin"] = api_origin(_env("THREEDLABS_BASE_URL") or profile.get("base_url") or DEFAULT_BASE_URL)
    if not any(isinstance(profile.get(k), str) and profile.get(k) for k in TOKEN_FIELDS):
        profile.pop("token_origin", None)
    data.setdefault("active_profile", name)


def update_config(*, profile_changes: dict | None = None, settings_changes: dict | None = None,
                  name: str | None = None) -> ConfigWrite:
    """One locked read-modify-write: fields of a profile (None or "" removes one) and "settings" keys."""

    def mutate(data: dict) -> None:
        if profile_changes:
            _apply_profile_changes(data, profile_changes, name)
        if settings_changes:
            _dict_at(data, "settings").update(settings_changes)

    return config_store.modify_config(mutate, config_path())


# --- resolved settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    base_url: str = DEFAULT_BASE_URL
    workspace_id: str | None = None
    profile: str = DEFAULT_PROFILE
    max_jobs: int = DEFAULT_MAX_JOBS
    max_jobs_per_hour: int = DEFAULT_MAX_JOBS_PER_HOUR
    max_jobs_per_day: int = DEFAULT_MAX_JOBS_PER_DAY
    dry_run: bool = False
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_decoded_megapixels: int = DEFAULT_MAX_DECODED_MEGAPIXELS
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    base_url_source: str = "default"


BUNDLED_SANDBOX_ID = "bundled-sandbox"


def journal_api(settings: Settings) -> str:
    """The API a job belongs to in the journal and in reuse keys: the base URL, except for the bundled
    sandbox, which gets a new port at every start while its jobs stay in the same user directory, so a
    re-run after a restart collects them instead of paying again."""
    return BUNDLED_SANDBOX_ID if settings.base_url_source == "bundled sandbox" else settings.base_url


def _first_given(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    return next(((value, where) for value, where in candidates if value), (None, ""))


def load_settings(*, base_url: str | None = None, workspace_id: str | None = None,
                  profile: str | None = None) -> Settings:
    """Resolve settings now (env and file are re-read on every call: users edit them live).

    Raises ConfigError for a value that cannot be used (naming where it came from), so that a bad
    setting stops a node before any request, never halfway through one.
    """
    path = config_path()
    data = read_config_file(path)
    profile_name = profile or active_profile_name(data)
    prof = read_profile(profile_name, data)
    url, source = _first_given((base_url, "argument"), (_env("THREEDLABS_BASE_URL"), "env THREEDLABS_BASE_URL"),
                         (prof.get("base_url"), f"profile {profile_name}"), (DEFAULT_BASE_URL, "default"))
    ws = check_workspace_id(*_first_given(((workspace_id or "").strip(), "the argument workspace_id"),
                                    (_env("THREEDLABS_WORKSPACE_ID"), "env THREEDLABS_WORKSPACE_ID"),
                                    (prof.get("workspace_id"), f"{path} (profile {profile_name})")))
    section = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    # The job limits: the environment's, else the config file's (checked even when the environment sets one).
    limits = {key: max(1, _env_int(env, _file_whole_number(section, key, default, path))) for key, env, default in (
        ("max_jobs", "THREEDLABS_MAX_JOBS", DEFAULT_MAX_JOBS),
        ("max_jobs_per_hour", "THREEDLABS_MAX_JOBS_PER_HOUR", DEFAULT_MAX_JOBS_PER_HOUR),
        ("max_jobs_per_day", "THREEDLABS_MAX_JOBS_PER_DAY", DEFAULT_MAX_JOBS_PER_DAY))}
    env_dry_run = _env("THREEDLABS_DRY_RUN").lower() in ("1", "true", "yes", "on")
    in_flight = _env_int("THREEDLABS_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)
    megapixels = _env_int("THREEDLABS_MAX_DECODED_MEGAPIXELS", DEFAULT_MAX_DECODED_MEGAPIXELS)
    return Settings(base_url=normalize_base_url(url), workspace_id=ws, profile=profile_name, **limits,
                    dry_run=env_dry_run or bool(section.get("dry_run")), max_in_flight=max(1, min(64, in_flight)),
                    max_decoded_megapixels=max(1, megapixels), base_url_source=source)
