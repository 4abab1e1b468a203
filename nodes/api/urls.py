"""The base URL policy: which API URLs the pack accepts (https, or plain http to this machine only), their
published form (ending in ``/api``), the origin a token is bound to, and what counts as this machine.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

DEFAULT_BASE_URL = "https://www.3dlabs.it.com/api"


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) can only mean this machine."""
    name = (host or "").strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


def normalize_base_url(url: str) -> str:
    """The API root in its published form, ending in ``/api`` (added to a bare origin; a doubled one collapsed).

    Plain http is for this machine only (the sandbox, a local proxy): elsewhere the token would
    cross the network in clear.
    """
    raw = (url or "").strip()
    if not raw:
        raise ConfigError("THREEDLABS_BASE_URL is empty.")
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"The base URL {raw!r} is not an http(s) URL such as {DEFAULT_BASE_URL}.")
    try:
        parts.port  # noqa: B018  a port that is not a number is an unusable URL
    except ValueError:
        raise ConfigError(f"The base URL {raw!r} has a port that is not a number.") from None
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(f"The base URL {raw!r} uses plain http:// to another machine; use https://",
                          hint="Plain http is accepted only for this machine (localhost, 127.0.0.1, ::1).")
    path = parts.path.rstrip("/")
    while path.endswith("/api/api"):
        path = path[: -len("/api")]
    if not path.endswith("/api"):
        path = path + "/api"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def api_origin(url: str) -> str:
    """``scheme://host[:port]`` of a base URL, normalised (lower case, default port left out)."""
    parts = urlsplit(normalize_base_url(url))
    host = parts.hostname or ""  # lower case already
    host = f"[{host}]" if ":" in host else host
    port = "" if parts.port in (None, 443 if parts.scheme == "https" else 80) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def origin_or_none(url: str | None) -> str | None:
    """The origin of ``url`` (of the official API if it is empty); None if the URL is unusable."""
    try:
        return api_origin(url or DEFAULT_BASE_URL)
    except ConfigError:
        return None
