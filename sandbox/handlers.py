"""The HTTP side of the sandbox: the threading server, the API handler and the file (CDN) handler.

Transport-level behaviour lives here: Clerk-style auth failures, workspace checks, injected latency,
errors, resets, HTML pages and broken JSON, plus the unauthenticated /__sandbox debug routes (served
only by a sandbox started with debug routes; otherwise they are 404 like any unknown path).
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import api
from .auth import Verdict
from .core import DEFAULT_WORKSPACE, SandboxState
from .faults import Faults
from .images import bomb_png, truncated
from .spoil import spoil

MAX_BODY = 8 * 1024 * 1024
_FILE_PATH = re.compile(r"/files/([A-Za-z0-9_.-]+)\.png")
_SIGN_IN_PAGE = (
    b"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in - 3DLabs</title></head>"
    b"<body><main><h1>Sign in to 3DLabs</h1><p>Your session has ended. Please sign in to continue.</p>"
    b"<form action=\"/sign-in\" method=\"get\"><button>Continue</button></form></main></body></html>"
)
_BAD_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections so ``stop`` can cut them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, state: SandboxState) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up mid-answer are normal here, and tracebacks would drown test output

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections; every answer has a length
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's delayed
    # ACK (40 ms on Linux) on every reused connection, a stall no real API server has.
    disable_nagle_algorithm = True
    server_version = "3DLabsSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str | None = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers=headers)

    def _reset_connection(self) -> None:
        """Abort the TCP connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the socket only really closes once its file objects are closed
            self.connection.close()
        except OSError:
            pass

    def _serve_file(self, path: str) -> None:
        """A result image by its ``/files/<name>.png`` path, with the image faults applied."""
        state = self.state
        state.stats.file_request(self.headers.get("Authorization") is not None)
        found = _FILE_PATH.fullmatch(path)
        data = state.image_bytes(found.group(1)) if found else None
        if data is None:
            self._send_json(404, {"error": "File not found"})
            return
        faults = state.faults
        if faults.huge_images:
            state.stats.fault("huge_image")
            data = bomb_png()
        elif faults.corrupt_images:
            state.stats.fault("corrupt_image")
            data = truncated(data)
        if faults.image_drip_bps > 0:
            state.stats.fault("image_drip")
            self._drip(data, faults.image_drip_bps)
            return
        self._send(200, data, "image/png", {"Cache-Control": "public, max-age=3600"})

    def _drip(self, data: bytes, per_second: float, content_type: str = "image/png") -> None:
        """The body a few bytes at a time: a slow host whose every read arrives within any read timeout."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        step = max(1, int(per_second / 10))
        for lo in range(0, len(data), step):
            self.wfile.write(data[lo:lo + step])
            self.wfile.flush()
            time.sleep(0.1)


class ApiHandler(_Handler):
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self._read_body()
        if body is None:  # the body cannot be skipped reliably, so the connection cannot be reused
            self.close_connection = True
            self._send_json(413, {"error": "Request body too large or its length unreadable"})
            return
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/__sandbox/") and self.state.debug_routes:
                self._debug(method, url.path, parse_qs(url.query), body)
            elif method == "GET" and url.path.startswith(api.API_FILE_ROOT + "/files/"):
                self._api_file(url.path[len(api.API_FILE_ROOT):])
            elif url.path == "/api" or url.path.startswith("/api/"):
                self._api(method, url.path, body)
            else:
                self._send_json(404, {"error": "Not found"})
        except OSError:  # the client went away mid-answer
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a sandbox bug must answer 500, not kill the connection
            self._send_json(500, {"error": f"Sandbox internal error: {exc!r}"})

    def _api(self, method: str, path: str, body: bytes) -> None:
        state = self.state
        route, params, allowed = api.match(method, path)
        state.stats.request(route.key if route else api.UNMATCHED_KEY)
        faults = state.faults
        if faults.latency_ms > 0:
            state.stats.fault("latency")
            time.sleep(faults.latency_ms / 1000.0)
        resettable = method == "GET" or not faults.reset_gets_only
        if resettable and state.dice.roll(faults.reset_rate):  # for a POST this comes before any job exists
            state.stats.fault("reset")
            self._reset_connection()
            return
        workspace_id = self.headers.get("x-workspace-id") or DEFAULT_WORKSPACE
        answer = self._gate(method, route, workspace_id, faults)
        if answer is None:
            if route is None and allowed:
                answer = api.error(405, "Method not allowed")
                answer.headers["Allow"] = ", ".join(allowed)
            elif route is None:
                answer = api.error(404, "Not found")
            else:
                answer = api.dispatch(state, route, params, body, workspace_id,
                                      self.headers.get("Idempotency-Key"))
        if answer.created_job and faults.drop_after_create:
            state.stats.fault("drop_after_create")
            self._reset_connection()
            return
        if spoil(self, route, answer, faults):
            return
        if route is not None and route.template == "/api/jobs/{jobId}" and answer.status == 200 \
                and state.dice.roll(faults.empty_200):
            state.stats.fault("empty_200")
            self._send(200, b"")
            return
        if route is not None and route.template == "/api/session/{id}" and answer.status == 200 \
                and faults.session_drip_bps > 0:
            state.stats.fault("session_drip")
            self._drip(json.dumps(answer.body).encode(), faults.session_drip_bps, "application/json; charset=utf-8")
            return
        self._answer(answer, faults)

    def _api_file(self, path: str) -> None:
        """A result image served by the API host itself: Clerk's middleware stands before it too."""
        refusal = self._clerk()
        if refusal is not None:
            self._answer(refusal, self.state.faults)
            return
        self._serve_file(path)

    def _clerk(self) -> api.Answer | None:
        """Clerk's middleware: the refusal of a missing, invalid or expired token, or None to go on."""
        state = self.state
        if not state.require_auth:
            return None
        verdict = state.auth.check(self.headers.get("Authorization"))
        if verdict is Verdict.OK:
            return None
        state.stats.auth_failure()
        return _clerk_refusal(verdict)

    def _gate(self, method: str, route: api.Route | None, workspace_id: str,
              faults: Faults) -> api.Answer | None:
        """Whatever stands before the route: Clerk's middleware, the workspace check, injected failures."""
        state = self.state
        refusal = self._clerk()
        if refusal is not None:
            return refusal
        if route is not None and route.workspace_scoped and not state.workspace_known(workspace_id):
            return api.error(403, "Workspace not found or access denied")
        if faults.redirect_to:
            state.stats.fault("redirect")
            return api.Answer(307, {"redirect": faults.redirect_to}, {"Location": faults.redirect_to})
        if faults.server_down:
            state.stats.fault("5xx")
            return api.error(500, "Internal Server Error")
        if faults.out_of_credits and method == "POST" and route is not None:
            state.stats.fault("out_of_credits")
            return api.error(402, "Insufficient credits: this workspace has 0 credits left")
        rate = faults.error_rate if method == "GET" else faults.post_error_rate
        if state.dice.roll(rate):
            return self._injected_error(method, faults)
        if state.dice.roll(faults.html_instead_of_json):
            state.stats.fault("html")
            answer = api.Answer(200, _SIGN_IN_PAGE)
            answer.headers["Content-Type"] = "text/html; charset=utf-8"
            return answer
        return None

    def _injected_error(self, method: str, faults: Faults) -> api.Answer:
        state = self.state
        status = state.dice.choice((429, 502, 503, 504) if method == "GET" else (429, 503))
        state.stats.fault("429" if status == 429 else "5xx")
        if status == 429:
            answer = api.error(429, "Too many requests")
            answer.headers["Retry-After"] = str(faults.retry_after)
        elif status == 502:  # gateways answer in HTML, whatever the client asked for
            answer = api.Answer(502, _BAD_GATEWAY_PAGE, {"Content-Type": "text/html"})
        elif status == 504:
            answer = api.Answer(504, b"An error occurred with your deployment\n\nFUNCTION_INVOCATION_TIMEOUT",
                                {"Content-Type": "text/plain; charset=utf-8"})
        else:
            answer = api.error(503, "Service temporarily unavailable")
        return answer

    def _answer(self, answer: api.Answer, faults: Faults) -> None:
        headers = dict(answer.headers)
        if isinstance(answer.body, bytes):  # a page or text, not JSON
            content_type = headers.pop("Content-Type", "text/plain")
            self._send(answer.status, answer.body, content_type, headers)
            return
        if answer.body is None:
            self._send(answer.status, b"", None, headers)
            return
        data = json.dumps(answer.body).encode()
        if self.state.dice.roll(faults.malformed_json):
            self.state.stats.fault("malformed_json")
            data = data[: max(1, len(data) // 2)]
        self._send(answer.status, data, "application/json; charset=utf-8", headers)

    def _debug(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        state = self.state
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            self._send_json(400, {"error": "body must be JSON"})
            return
        if path == "/__sandbox/stats" and method == "GET":
            self._send_json(200, state.stats.snapshot())
        elif path == "/__sandbox/reset" and method == "POST":
            state.reset()
            self._send_json(200, {"ok": True})
        elif path == "/__sandbox/faults" and method in ("GET", "POST"):
            try:
                faults = state.set_faults(**payload) if method == "POST" else state.faults
            except (TypeError, ValueError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, faults.to_dict())
        elif path == "/__sandbox/token" and method in ("GET", "POST"):
            try:
                ttl = float(query.get("ttl", ["60"])[0])
            except ValueError:
                self._send_json(400, {"error": "ttl must be a number of seconds"})
                return
            token = state.auth.issue(ttl, issuer=state.origin)
            if query.get("format", [""])[0] == "text":  # for THREEDLABS_TOKEN_COMMAND="curl -s ..."
                self._send(200, token.encode(), "text/plain; charset=utf-8")
            else:
                self._send_json(200, {"token": token, "expiresIn": ttl})
        elif path == "/__sandbox/revoke" and method == "POST":
            token = payload.get("token") if isinstance(payload, dict) else None
            if not isinstance(token, str) or not token:
                self._send_json(400, {"error": "token is required"})
                return
            state.auth.revoke(token)
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "Not found"})


def _clerk_refusal(verdict: Verdict) -> api.Answer:
    headers = {"x-clerk-auth-status": "signed-out", "x-clerk-auth-reason": verdict.value}
    if verdict is Verdict.EXPIRED:
        # Clerk answers an expired session on an API route with a bare 404, not a 401: the tricky case.
        return api.Answer(404, None, headers)
    return api.Answer(401, {"error": "Unauthorized"}, headers)


class FileHandler(_Handler):
    """The stand-in CDN: no auth, but it counts requests that carried an Authorization header anyway."""

    def do_GET(self) -> None:
        self._serve_file(urlsplit(self.path).path)

    def do_HEAD(self) -> None:
        self._serve_file(urlsplit(self.path).path)
