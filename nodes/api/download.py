"""Fetching result images as bytes: http(s) and data: URLs, or raw base64.

Result URLs usually point at a CDN, not the API host, so the Authorization header goes only to the
API's own host; redirects are followed by hand so that the header can never travel with them. When
the API host itself serves the image and turns the token away, a command-made token is fetched
afresh once, as for the JSON calls: the job is paid for, and an expired token must not lose it.
Bodies are streamed under a size cap, with timeouts and GET retries. No tensors here.
"""

from __future__ import annotations

import base64
import binascii
import random
import time
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import requests
from requests import exceptions as rexc

from .errors import ImageDownloadError, ImageTooLargeError, redact
from .http import error_for_response, refused_token
from .models import ImageRef

MAX_BYTES_DEFAULT = 64 * 1024 * 1024
MAX_REDIRECTS = 5
ATTEMPTS = 4
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # query strings carry signed tokens
    return redact(shown if len(shown) <= 120 else shown[:117] + "...")


def fetch_image_bytes(ref: ImageRef, transport, *, max_bytes: int = MAX_BYTES_DEFAULT,
                      timeout: tuple[float, float] = (10.0, 60.0)) -> bytes:
    """Return the bytes of one result image; ``transport`` is the client's HttpTransport."""
    if ref.kind == "data":
        data = _decode_data_url(ref.value, max_bytes)
    elif ref.kind == "base64":
        if len(ref.value) > max_bytes * 4 // 3 + 16:
            raise ImageTooLargeError(f"base64 image data is over the {max_bytes // (1024 * 1024)} MiB limit")
        data = _b64(ref.value)
    else:
        data = _download(ref.value, transport, max_bytes, timeout)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{len(data)} bytes is over the {max_bytes // (1024 * 1024)} MiB limit")
    return data


def _download(url: str, transport, max_bytes: int, timeout) -> bytes:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ImageDownloadError(f"refusing to fetch {_shorten(url)}: only http(s) and data: URLs are allowed")
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(4.0, 0.25 * 2 ** attempt)))
        try:
            return _download_once(url, transport, max_bytes, timeout)
        except _Transient as exc:
            last = exc.error
    assert last is not None
    raise last


class _Transient(Exception):
    def __init__(self, error: Exception):
        self.error = error


def _download_once(url: str, transport, max_bytes: int, timeout) -> bytes:
    current = url
    hops = 0
    refreshed = False
    while hops <= MAX_REDIRECTS:
        headers = {"Accept": "image/*,*/*;q=0.5"}
        token = transport.tokens.get() if transport.is_api_url(current) else None
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = transport.session.get(current, headers=headers, timeout=timeout, stream=True,
                                         allow_redirects=False)
        except rexc.RequestException as exc:
            raise _Transient(ImageDownloadError(f"{_shorten(current)}: {type(exc).__name__}")) from None
        with resp:
            if resp.is_redirect:
                current = urljoin(current, resp.headers.get("Location", ""))
                if urlsplit(current).scheme not in ("http", "https"):
                    raise ImageDownloadError(f"redirected to a non-http URL {_shorten(current)}")
                hops += 1
                continue
            if token is not None and refused_token(resp):
                if not refreshed and transport.tokens.invalidate(token):
                    refreshed = True  # a command-made token may have expired since it was minted: once more
                    continue
                refusal = error_for_response(resp)
                raise ImageDownloadError(f"{_shorten(current)}: {refusal.detail}", status=resp.status_code,
                                         hint=refusal.hint)
            if resp.status_code in RETRY_STATUSES:
                raise _Transient(ImageDownloadError(f"{_shorten(current)} answered HTTP {resp.status_code}"))
            if resp.status_code >= 400:
                hint = " (result URLs may expire after an hour)" if resp.status_code in (403, 404, 410) else ""
                raise ImageDownloadError(f"{_shorten(current)} answered HTTP {resp.status_code}{hint}",
                                         status=resp.status_code)
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageTooLargeError(
                    f"{_shorten(current)} is {int(declared)} bytes; the limit is {max_bytes // (1024 * 1024)} MiB")
            chunks = bytearray()
            try:
                for chunk in resp.iter_content(chunk_size=256 * 1024):
                    chunks += chunk
                    if len(chunks) > max_bytes:
                        raise ImageTooLargeError(
                            f"{_shorten(current)} is over the {max_bytes // (1024 * 1024)} MiB limit")
            except (rexc.RequestException, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Transient(ImageDownloadError(
                    f"{_shorten(current)}: the download broke off ({type(exc).__name__})")) from None
            if declared and declared.isdigit() and len(chunks) < int(declared):
                raise _Transient(ImageDownloadError(f"{_shorten(current)}: got {len(chunks)} of {declared} bytes"))
            return bytes(chunks)
    raise ImageDownloadError(f"{_shorten(url)}: more than {MAX_REDIRECTS} redirects")
