"""Who may use the pack's routes, and how every answer becomes JSON: the guard around each handler.

- Host: a loopback name or address, an address ComfyUI listens on, the address this connection came in
  on (when ComfyUI listens on all interfaces) or a name in ``THREEDLABS_ALLOWED_HOSTS``. A page that
  reached ComfyUI by DNS rebinding names the attacker's domain in Host (and in Origin, so that a
  same-origin check alone would let it through).
- Origin: same-origin only (an ``Origin`` naming another host:port, ``Origin: null`` or
  ``Sec-Fetch-Site: cross-site`` is refused); POSTs take ``application/json`` only, which a cross-site
  form cannot send without a CORS preflight.
- Every outcome is JSON ``{"error": "<message>"}`` with a fitting status; typed errors carry their own
  (redacted) message and ``http_status``, and nothing else reaches the answer: no traceback, no token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from . import comfy
from .api.errors import ThreeDLabsError
from .api.redaction import redact
from .api.urls import is_loopback_host

log = logging.getLogger("3dlabs")

WILDCARDS = ("0.0.0.0", "::", "")


class Refused(Exception):
    """A request the routes answer with ``{"error": str(self)}`` and ``status``, without running it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def origin_required_for(fields: tuple[str, ...], work: Callable[[dict], object]) -> Callable[[dict], object]:
    """``work``, whose body's ``fields`` only a browser page (a request with an Origin) may set while ComfyUI
    listens beyond loopback: see :func:`check_origin_present`."""
    work.origin_required_for = fields  # type: ignore[attr-defined]  read by guarded()
    return work


def check_origin_present(request: web.Request, field: str) -> None:
    """Refuse a change of ``field`` from a client that sent no Origin while ComfyUI listens beyond loopback.

    Browsers send an Origin with every POST, so the settings panel is never refused. A LAN client (curl,
    a script) sends none: such a client could point the base URL at its own server and wait for the user
    to save a token. A client that forges an Origin still meets the token's binding to the base URL in use
    when it was saved, which the panel shows.
    """
    if request.headers.get("Origin") is not None:
        return
    beyond = [h for h in comfy.listen_hosts() if h in WILDCARDS or not is_loopback_host(_name(h) or h)]
    if beyond:
        raise Refused(403, f"Refused: {field} can only be changed from ComfyUI's own page in a browser while "
                           f"ComfyUI listens beyond this machine ({', '.join(beyond)}); this request came "
                           "without an Origin (a script or another machine).")


def guarded(method: str, work: Callable[..., object]):
    """The aiohttp handler of a route: the checks below, then ``work(body)`` for a POST or ``work()`` for
    a GET, in a thread (it may block); its result, or any failure, answered as JSON."""
    needs_origin = getattr(work, "origin_required_for", None)

    async def handler(request: web.Request) -> web.Response:
        try:
            check_host(request)
            check_same_origin(request)
            args = [await json_body(request)] if method == "POST" else []
            for field in needs_origin or ():
                if args and field in args[0]:
                    check_origin_present(request, field)
            return web.json_response(await asyncio.to_thread(work, *args))
        except Refused as err:
            status, message = err.status, str(err)
        except ThreeDLabsError as err:
            status, message = err.http_status, err.message
        except web.HTTPException as err:  # aiohttp's own refusals (a body over the size limit...)
            status, message = err.status, err.reason or "The request was refused."
        except Exception as err:  # noqa: BLE001  an answer, not a traceback, goes to the browser
            # The type and a redacted message only: a traceback could quote a token-bearing value.
            log.warning("3DLabs: %s %s failed: %s", request.method, request.path,
                        redact(f"{type(err).__name__}: {err}"))
            status, message = 500, f"The 3DLabs route failed ({type(err).__name__}); see the ComfyUI log."
        return web.json_response({"error": redact(message)}, status=status)

    return handler


def _name(host: str) -> str:
    """The host name of a Host header value ("[::1]:8188" -> "::1"), lower case, no trailing dot."""
    try:
        name = urlsplit(f"//{host.strip()}").hostname or ""
    except ValueError:
        return ""
    return name.rstrip(".").lower()


def _address(text: str) -> object:
    """``text`` as an IP address when it is one (an IPv4-mapped IPv6 address as IPv4), else as is."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    # A dual-stack socket reports an IPv4 client's target as ::ffff:a.b.c.d.
    return getattr(addr, "ipv4_mapped", None) or addr


def check_host(request: web.Request) -> None:
    """Refuse a Host this ComfyUI does not answer to by its own address (DNS rebinding)."""
    raw = request.headers.get("Host", "")
    name = _name(raw)
    listened = [_name(h) if ":" not in h or h.startswith("[") else h.lower() for h in comfy.listen_hosts()]
    own = [h for h in listened if h not in WILDCARDS]
    if len(own) < len(listened):
        # Listening everywhere: the address this connection was made to is ComfyUI's own.
        sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
        if isinstance(sock, (tuple, list)) and sock and isinstance(sock[0], str):
            own.append(sock[0].split("%")[0])
    allowed = map(_name, os.environ.get("THREEDLABS_ALLOWED_HOSTS", "").split(","))
    if name and (is_loopback_host(name) or _address(name) in map(_address, own) or name in allowed):
        return
    raise Refused(403, f"Refused: the Host header {raw.strip()[:100]!r} is not an address of this ComfyUI "
                       "(a page reached through DNS rebinding, or a wrong name). Use localhost or the address "
                       "ComfyUI listens on, or add the name to THREEDLABS_ALLOWED_HOSTS.")


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
    hosts = (request.headers.get("X-Forwarded-Host", "").split(",")[0].strip(), request.host or "")
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
