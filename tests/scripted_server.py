"""The tests' one scripted HTTP server, on loopback: for what the sandbox cannot be made to answer.

The sandbox (sandbox/) is the 3DLabs API as the pack meets it, and its fault flags cover what an API
does wrong in known ways. This server answers whatever a test scripts instead: per method and path a
queue of answers (the last one repeats), or a function of the request's JSON, or a raw handler that
writes the answer itself (a body that drips, never ends or lies about its length, a redirect to a
host that hides behind another). Every request is recorded with its headers, so that a test can tell
which host received the token.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: tuple = (("Content-Type", "application/json"),)
    declared_length: int | None = None  # a Content-Length that lies (the body is shorter)


def raw(body: bytes, status=200, content_type="application/json", **headers) -> Answer:
    """An answer of these bytes; a header named ``retry_after`` is sent as ``Retry-After``."""
    extra = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Answer(status, body, (("Content-Type", content_type), *extra))


def js(value, status=200, **headers) -> Answer:
    return raw(json.dumps(value).encode(), status, **headers)


NOT_FOUND = js({"error": "Not found"}, 404)


def send(h, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> None:
    """For a raw handler: answer ``h`` (the request handler) with these bytes."""
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def send_json(h, status: int, value, headers: dict | None = None) -> None:
    send(h, status, json.dumps(value).encode(), headers=headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def _any(self) -> None:
        owner: ScriptedServer = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with owner.lock:
            owner.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        try:
            if owner.handle is not None:
                owner.handle(self, body)
            else:
                self._send(owner.next(self.command, self.path.split("?")[0], body))
        except OSError:  # the client hung up, as it should after a limit
            self.close_connection = True

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(answer.declared_length or len(answer.body)))
        if answer.declared_length is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_HEAD = _any


class ScriptedServer:
    """Started at once; ``stop()`` it. ``handle(h, body)``, when given (or set later), answers every
    request itself; otherwise the answers scripted with ``on`` do, and anything unscripted is a 404."""

    def __init__(self, handle=None) -> None:
        self.handle = handle
        self.lock = threading.Lock()
        self.answers: dict[tuple[str, str], list] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers (lower-case names)
        self.sent = 0  # body bytes a streaming handler managed to write
        self.stop_event = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.origin + "/api"

    def on(self, method: str, path: str, *answers) -> None:
        """Answer ``method path`` with ``answers`` in turn, the last one for good. An answer may be a
        function of the request's JSON (None for an empty body) that returns the Answer."""
        with self.lock:
            self.answers[(method, path)] = list(answers)

    def next(self, method: str, path: str, body: bytes) -> Answer:
        with self.lock:
            queue = self.answers.get((method, path))
            if not queue:
                return NOT_FOUND
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(json.loads(body) if body else None) if callable(answer) else answer

    def count(self, method: str | None = None, prefix: str = "") -> int:
        return sum(1 for m, p, _ in self.requests if (method is None or m == method) and p.startswith(prefix))

    def authorizations(self) -> list[str]:
        return [h["authorization"] for _, _, h in self.requests if "authorization" in h]

    def reset(self) -> ScriptedServer:
        """Nothing scripted, nothing recorded, no raw handler: as if just started."""
        with self.lock:
            self.handle = None
            self.answers.clear()
            self.requests.clear()
            self.sent = 0
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
