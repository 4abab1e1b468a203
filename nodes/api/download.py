"""Fetching result images as bytes: http(s) and data: URLs, or raw base64.

Result URLs come from the API's answers and from shared projects, so they are hostile input: a URL
that parsers could read two ways (a backslash, user info, whitespace or control characters, a bad
port) is refused before any request. The token is the session's :class:`~.http.ApiAuth` business: it
goes only to the API's own origin, judged on each request as it is sent, and a refused command-made
token is replaced there once. Redirects are followed by hand, each hop checked like the first.
Every download has an overall deadline and honours the cancel check, also while a host drips bytes
and between retries; what is retried, and how often, is the client's one :mod:`.retry` policy.
Bodies are streamed under a size cap. No tensors here.
"""

from __future__ import annotations

import base64
import binascii
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from requests import exceptions as rexc

from .errors import (
    ImageDownloadError,
    ImageError,
    ImageTooLargeError,
    error_for_response,
    parse_retry_after,
    redact,
    refused_token,
)
from .http import unsafe_url_reason
from .models import ImageRef
from .retry import RETRY_STATUSES, Retryable

MAX_BYTES_DEFAULT = 64 * 1024 * 1024
DEADLINE_SECONDS_DEFAULT = 120.0  # per image, redirects and retries included
MAX_REDIRECTS = 5
WATCH_SECONDS = 0.1  # how often a running download looks at the deadline and the cancel check


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise ImageDownloadError("a data: URL has no comma separating header and payload")
    if len(payload) > max_bytes * 4 // 3 + 16:
        raise ImageTooLargeError(f"a data: URL is over the {max_bytes // (1024 * 1024)} MiB limit")
    if header.endswith(";base64"):
        return _b64(payload)
    return unquote_to_bytes(payload)


def _b64(payload: str) -> bytes:
    cleaned = "".join(payload.split())
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageDownloadError(f"base64 image data is corrupt ({exc})") from None


def _shorten(url: str) -> str:
    try:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # query strings carry signed tokens
    except ValueError:
        shown = url.split("?", 1)[0]
    shown = shown.encode("unicode_escape").decode("ascii")  # control characters shown, not acted on
    return redact(shown if len(shown) <= 120 else shown[:117] + "...")


def fetch_image_bytes(ref: ImageRef, transport, *, max_bytes: int = MAX_BYTES_DEFAULT,
                      timeout: tuple[float, float] = (10.0, 60.0), deadline: float = DEADLINE_SECONDS_DEFAULT,
                      cancel_check: Callable[[], None] | None = None, job_id: str | None = None) -> bytes:
    """Return the bytes of one result image; ``transport`` is the client's HttpTransport.

    ``cancel_check`` raises to abort (its exception propagates unchanged); ``job_id`` names the paid
    job in every error, so that it can be collected again by id.
    """
    try:
        if ref.kind == "data":
            data = _decode_data_url(ref.value, max_bytes)
        elif ref.kind == "base64":
            if len(ref.value) > max_bytes * 4 // 3 + 16:
                raise ImageTooLargeError(f"base64 image data is over the {max_bytes // (1024 * 1024)} MiB limit")
            data = _b64(ref.value)
        else:
            data = _download(ref.value, transport, max_bytes, timeout, deadline, cancel_check)
        if len(data) > max_bytes:
            raise ImageTooLargeError(f"{len(data)} bytes is over the {max_bytes // (1024 * 1024)} MiB limit")
        return data
    except ImageError as err:
        if not job_id:
            raise
        raise type(err)(f"job {job_id}: {err.detail}", status=err.status, job_id=job_id, hint=err.hint) from None


def _download(url: str, transport, max_bytes: int, timeout, deadline: float, cancel_check) -> bytes:
    limits = _Limits(time.monotonic() + deadline, deadline, cancel_check)
    return transport.retry.run(lambda: _download_once(url, transport, max_bytes, timeout, limits),
                               cancel_check=cancel_check, time_left=limits.left, what=f"download of {_shorten(url)}")


class _Limits:
    """The deadline and the cancel check of one download."""

    def __init__(self, ends_at: float, seconds: float, cancel_check) -> None:
        self.ends_at, self.seconds, self.cancel_check = ends_at, seconds, cancel_check

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def check(self, url: str) -> None:
        if self.cancel_check is not None:
            self.cancel_check()
        if self.left() <= 0:
            raise self.overdue(url)

    def overdue(self, url: str) -> ImageDownloadError:
        return ImageDownloadError(f"{_shorten(url)} did not arrive within the {self.seconds:g} s allowed for "
                                  "one image (the image host is too slow or stalled)")


def _download_once(url: str, transport, max_bytes: int, timeout, limits: _Limits) -> bytes:
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        reason = unsafe_url_reason(current)
        if reason:
            raise ImageDownloadError(f"refusing to fetch {_shorten(current)}: {reason}")
        limits.check(current)
        # Each read may wait no longer than the time left, so a stalled host ends at the deadline.
        read_timeout = max(0.05, min(timeout[1], limits.left()))
        try:
            # The session's ApiAuth adds the token if, and only if, this URL connects to the API's origin.
            resp = transport.session.get(current, headers={"Accept": "image/*,*/*;q=0.5"},
                                         timeout=(timeout[0], read_timeout), stream=True, allow_redirects=False)
        except rexc.RequestException as exc:
            limits.check(current)
            raise Retryable(ImageDownloadError(f"{_shorten(current)}: {type(exc).__name__}")) from None
        with resp:
            if resp.is_redirect:
                current = urljoin(current, resp.headers.get("Location", ""))
                continue
            if "Authorization" in resp.request.headers and refused_token(resp):
                refusal = error_for_response(resp)
                raise ImageDownloadError(f"{_shorten(current)}: {refusal.detail}", status=resp.status_code,
                                         hint=refusal.hint)
            if resp.status_code in RETRY_STATUSES:
                raise Retryable(ImageDownloadError(f"{_shorten(current)} answered HTTP {resp.status_code}",
                                                   status=resp.status_code),
                                parse_retry_after(resp.headers.get("Retry-After")))
            if resp.status_code >= 400:
                hint = " (result URLs may expire after an hour)" if resp.status_code in (403, 404, 410) else ""
                raise ImageDownloadError(f"{_shorten(current)} answered HTTP {resp.status_code}{hint}",
                                         status=resp.status_code)
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageTooLargeError(
                    f"{_shorten(current)} is {int(declared)} bytes; the limit is {max_bytes // (1024 * 1024)} MiB")
            return _read_body(resp, current, max_bytes, declared, limits)
    raise ImageDownloadError(f"{_shorten(url)}: more than {MAX_REDIRECTS} redirects")


def _read_body(resp, url: str, max_bytes: int, declared: str | None, limits: _Limits) -> bytes:
    chunks = bytearray()
    with _Watchdog(resp, limits) as watch:
        try:
            for chunk in resp.iter_content(chunk_size=256 * 1024):
                watch.raise_if_tripped(url)
                chunks += chunk
                if len(chunks) > max_bytes:
                    raise ImageTooLargeError(f"{_shorten(url)} is over the {max_bytes // (1024 * 1024)} MiB limit")
        except rexc.RequestException as exc:
            watch.raise_if_tripped(url)
            raise Retryable(ImageDownloadError(
                f"{_shorten(url)}: the download broke off ({type(exc).__name__})")) from None
        watch.raise_if_tripped(url)  # a socket shut by the watchdog reads as an early end
    if declared and declared.isdigit() and len(chunks) < int(declared):
        raise Retryable(ImageDownloadError(f"{_shorten(url)}: got {len(chunks)} of {declared} bytes"))
    return bytes(chunks)


class _Watchdog:
    """Ends a body read at the deadline or on Cancel by shutting the response's socket.

    A host that drips a byte a second keeps every single read alive (each one is within the read
    timeout), and a read blocked on the socket checks nothing, so only another thread can end it.
    """

    def __init__(self, resp, limits: _Limits) -> None:
        self._resp, self._limits = resp, limits
        self._done = threading.Event()
        self.tripped: BaseException | None = None
        self._thread = threading.Thread(target=self._watch, name="3dlabs-download-watch", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(WATCH_SECONDS):
            try:
                self._limits.check("")
            except BaseException as exc:  # noqa: BLE001  re-raised on the downloading thread
                self.tripped = exc
                _shut(self._resp)
                return

    def raise_if_tripped(self, url: str) -> None:
        if self.tripped is None:
            self._limits.check(url)  # cheap, and prompt while data flows
            return
        if isinstance(self.tripped, ImageDownloadError):
            raise self._limits.overdue(url)
        raise self.tripped


def _shut(resp) -> None:
    """Wake a read blocked on ``resp``'s socket: it then sees the end of the stream."""
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:
        fp = getattr(getattr(resp.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
