"""Fetching result images as bytes: http(s) and data: URLs, or raw base64; and the deadline of an answer.

Result URLs come from the API's answers and from shared projects, so they are hostile input: a URL
that parsers could read two ways is refused before any request, and redirects are followed by hand,
each hop checked like the first (the token is the session's :class:`~.http.ApiAuth` business). Every
download has a size cap and an overall deadline, and ends on Cancel, also while a host drips bytes.
:func:`answer_deadline` gives a JSON answer of the API (a shared project) the same watchdog.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from requests import exceptions as rexc

from .errors import ImageDownloadError, ImageError, ImageTooLargeError, NetworkError
from .http import RETRY_STATUSES, HttpTransport, Retryable, error_text, unsafe_url_reason
from .http_errors import error_for_response, parse_retry_after, refused_token
from .models import ImageRef
from .redaction import redact

MAX_BYTES_DEFAULT = 64 * 1024 * 1024
DEADLINE_SECONDS_DEFAULT = 120.0  # per image, redirects and retries included
ANSWER_DEADLINE_SECONDS = 120.0  # per JSON answer read under answer_deadline, retries included
MAX_REDIRECTS = 5
WATCH_SECONDS = 0.1  # how often a running download looks at the deadline and the cancel check
_watching = threading.local()  # the Watchdog of the answer this thread reads under answer_deadline


def fetch_image_bytes(ref: ImageRef, transport: HttpTransport, *, max_bytes: int, deadline: float,
                      cancel_check: Callable[[], None] | None, job_id: str | None) -> bytes:
    """The bytes of one result image. ``cancel_check`` raises to abort (its exception propagates);
    ``job_id`` names the paid job in every error, so that it can be collected again by id."""
    limit = f"{max_bytes // (1024 * 1024)} MiB limit"
    try:
        if ref.kind == "url":
            download = _Download(transport, max_bytes, deadline, cancel_check)
            data = transport.retry.run(lambda: download.once(ref.value), cancel_check=cancel_check,
                                       time_left=download.left, what=f"download of {_shorten(ref.value)}")
        else:
            data = _decode_inline(ref, max_bytes, limit)
        if len(data) > max_bytes:
            raise ImageTooLargeError(f"{len(data)} bytes is over the {limit}")
        return data
    except ImageError as err:
        if not job_id:
            raise
        raise type(err)(f"job {job_id}: {err.detail}", status=err.status, job_id=job_id, hint=err.hint) from None


def _decode_inline(ref: ImageRef, max_bytes: int, limit: str) -> bytes:
    """A ``data:`` URL's or raw base64's bytes, refusing a payload too large before decoding it."""
    payload, what, is_base64 = ref.value, "base64 image data", True
    if ref.kind == "data":
        header, sep, payload = ref.value.partition(",")
        if not sep:
            raise ImageDownloadError("a data: URL has no comma separating header and payload")
        what, is_base64 = "a data: URL", header.endswith(";base64")
    if len(payload) > max_bytes * 4 // 3 + 16:
        raise ImageTooLargeError(f"{what} is over the {limit}")
    if not is_base64:
        return unquote_to_bytes(payload)
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


class _Download:
    """One URL's download: its deadline, cancel check and size cap hold across redirects and retries."""

    def __init__(self, transport: HttpTransport, max_bytes: int, seconds: float,
                 cancel_check: Callable[[], None] | None) -> None:
        self.transport, self.max_bytes, self.seconds, self.cancel_check = transport, max_bytes, seconds, cancel_check
        self.ends_at = time.monotonic() + seconds

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def check(self, url: str) -> None:
        if self.cancel_check is not None:
            self.cancel_check()
        if self.left() <= 0:
            raise ImageDownloadError(f"{_shorten(url)} did not arrive within the {self.seconds:g} s allowed for "
                                     "one image (the image host is too slow or stalled)")

    def once(self, url: str) -> bytes:
        current, settings = url, self.transport.settings
        for _hop in range(MAX_REDIRECTS + 1):
            reason = unsafe_url_reason(current)
            if reason:
                raise ImageDownloadError(f"refusing to fetch {_shorten(current)}: {reason}")
            self.check(current)
            # Each read may wait no longer than the time left, so a stalled host ends at the deadline.
            timeout = (settings.connect_timeout, max(0.05, min(settings.read_timeout, self.left())))
            try:
                # The session's ApiAuth adds the token if, and only if, this URL connects to the API's origin.
                resp = self.transport.session.get(current, headers={"Accept": "image/*,*/*;q=0.5"}, stream=True,
                                                  timeout=timeout, allow_redirects=False)
            except rexc.RequestException as exc:
                self.check(current)
                raise Retryable(ImageDownloadError(f"{_shorten(current)}: {type(exc).__name__}")) from None
            with resp:
                if resp.is_redirect:
                    current = urljoin(current, resp.headers.get("Location", ""))
                    continue
                return self._answer(resp, current)
        raise ImageDownloadError(f"{_shorten(url)}: more than {MAX_REDIRECTS} redirects")

    def _answer(self, resp, url: str) -> bytes:
        status, shown, mib = resp.status_code, _shorten(url), self.max_bytes // (1024 * 1024)
        if "Authorization" in resp.request.headers and refused_token(resp):
            refusal = error_for_response(resp, error_text(resp))
            raise ImageDownloadError(f"{shown}: {refusal.detail}", status=status, hint=refusal.hint)
        if status in RETRY_STATUSES:
            raise Retryable(ImageDownloadError(f"{shown} answered HTTP {status}", status=status),
                            parse_retry_after(resp.headers.get("Retry-After")))
        if status >= 400:
            hint = " (result URLs may expire after an hour)" if status in (403, 404, 410) else ""
            raise ImageDownloadError(f"{shown} answered HTTP {status}{hint}", status=status)
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageTooLargeError(f"{shown} is {int(declared)} bytes; the limit is {mib} MiB")
        body = self._body(resp, url)
        if declared.isdigit() and len(body) < int(declared):
            raise Retryable(ImageDownloadError(f"{shown}: got {len(body)} of {declared} bytes"))
        return bytes(body)

    def _body(self, resp, url: str) -> bytearray:
        """The body under the size cap, ended at the deadline or on Cancel however slowly it comes."""
        body = bytearray()
        with _Watchdog(lambda: self.check(url)) as dog:
            dog.attach(resp)
            try:
                for chunk in resp.iter_content(chunk_size=256 * 1024):
                    dog.checkpoint()
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ImageTooLargeError(f"{_shorten(url)} is over the {self.max_bytes // (1024 * 1024)} "
                                                 "MiB limit")
                dog.checkpoint()
            except rexc.RequestException as exc:
                dog.checkpoint()
                broke = f"{_shorten(url)}: the download broke off ({type(exc).__name__})"
                raise Retryable(ImageDownloadError(broke)) from None
        return body


class _Watchdog:
    """Runs ``check`` about every WATCH_SECONDS while a body is read, on the one watch thread that every
    download and answer of the process shares: a deadline costs no thread of its own.

    A host that drips a byte a second keeps every single read within the read timeout, and a read
    blocked on the socket checks nothing: when ``check`` raises, the watch thread shuts the attached
    response's socket (urllib3's public ``HTTPResponse.shutdown``: the read sees an early end) and
    keeps the error for the reader to raise.
    """

    watched: set[_Watchdog] = set()
    wake = threading.Condition()
    thread: threading.Thread | None = None

    def __init__(self, check: Callable[[], None]) -> None:
        self.check = check
        self.tripped: list[BaseException] = []
        self._resp = None
        self._lock = threading.Lock()  # held by the watch thread while it looks: no shutdown after the block

    def __enter__(self) -> _Watchdog:
        with self.wake:
            self.watched.add(self)
            if _Watchdog.thread is None:
                _Watchdog.thread = threading.Thread(target=self._watch, name="3dlabs-watch", daemon=True)
                _Watchdog.thread.start()
            self.wake.notify()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock, self.wake:
            self.watched.discard(self)

    def attach(self, resp) -> None:
        with self._lock:
            self._resp = resp
            if self.tripped:  # it tripped between two requests: this one ends at once too
                _shut(resp)

    def checkpoint(self) -> None:
        if self.tripped:
            raise self.tripped[0]
        self.check()  # cheap, and prompt while data flows

    def look(self) -> None:
        with self._lock:
            if self not in self.watched or self.tripped:
                return
            try:
                self.check()
            except BaseException as exc:  # noqa: BLE001  re-raised on the reading thread
                self.tripped.append(exc)
                if self._resp is not None:
                    _shut(self._resp)

    @classmethod
    def _watch(cls) -> None:
        while True:
            with cls.wake:
                while not cls.watched:
                    cls.wake.wait()
                watched = list(cls.watched)
            for dog in watched:
                dog.look()
            time.sleep(WATCH_SECONDS)


@contextmanager
def answer_deadline(transport: HttpTransport, what: str, cancel_check: Callable[[], None] | None = None,
                    seconds: float | None = None):
    """API requests made by this thread inside the block end on Cancel and after ``seconds`` in all (default
    ANSWER_DEADLINE_SECONDS), even while the API drips its answer: the per-read timeout alone lets a host
    that sends a byte now and then hold the node for as long as it likes."""
    seconds = ANSWER_DEADLINE_SECONDS if seconds is None else seconds
    ends_at = time.monotonic() + seconds

    def check() -> None:
        if cancel_check is not None:
            cancel_check()
        if time.monotonic() >= ends_at:
            raise NetworkError(f"{what} did not arrive within the {seconds:g} s allowed for one answer (the API is "
                               "too slow or stalled)", summary="3DLabs did not answer in time.",
                               hint="Queue again in a while.")

    hooks = transport.session.hooks["response"]
    if _watch_answer not in hooks:  # public requests API: a hook sees each response before its body is read
        hooks.append(_watch_answer)
    with _Watchdog(check) as dog:
        _watching.dog = dog
        try:
            yield
        except Exception:
            if dog.tripped:  # the early end it caused reads as a broken answer: say what really ended it
                raise dog.tripped[0] from None
            raise
        finally:
            _watching.dog = None


def _watch_answer(resp, **_kwargs):
    dog = getattr(_watching, "dog", None)
    if dog is not None:
        try:
            dog.checkpoint()
        except BaseException:
            resp.close()
            raise
        dog.attach(resp)
    return resp


def _shut(resp) -> None:
    """Wake a read blocked on ``resp``'s socket: it then sees the end of the stream. urllib3 refuses once
    the response is closed or its connection is back in the pool (then no read is blocked on it)."""
    try:
        resp.raw.shutdown()
    except (AttributeError, RuntimeError, ValueError, OSError):
        pass
