"""Pixel rows of a Pillow image -> float32 0..1 rows of an output array, on one core or two.

``nodes/images.py`` decides what a picture becomes (modes, size, fit); this module only moves pixels
and owns the one helper thread that shares the work:

- :func:`write_rgb` converts a decoded 8-bit L / LA / RGB / RGBA (or F) image into an [H,W,3] float32
  view, splitting large images between the calling thread and the helper.
- :func:`stream_rgb` decodes an RGB JPEG, PNG or WebP straight into a buffer it owns and converts each
  band of rows on the helper as soon as the decoder has finished it, so the conversion overlaps the
  decoding instead of following it. A JPEG decodes so fast that converting afterwards adds half again
  to its time; overlapped, the output is ready a fraction of a millisecond after the last row.

How a finished row is recognised: Pillow stores an RGB pixel in four bytes and its unpacker writes 255
into the fourth (padding) byte of every pixel it stores. The buffer starts with that byte at 0 in the
last pixel of each row, so a row whose last padding byte reads 255 has been written. The decoders
allowed here write each row once, top to bottom (no Adam7 interlacing, no progressive passes into the
image), which :func:`can_stream` checks. A row is taken only once the decoder is a few rows further
on, so no partly visible write of the row is ever read. If anything about this does not hold after
decoding (a row never marked), the caller converts the whole image the ordinary way, so the worst
case is speed, never a wrong pixel.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageFile

from .api.errors import ImageDecodeError

_U8_MAX = np.float32(255.0)

# Conversion is split between the calling thread and one helper for large images (numpy releases the
# GIL); below ~2 Mpx the hand-over costs about what it saves. The helper is shared: work that finds it
# busy (another node decoding at the same moment) runs on its own thread instead of queueing.
_PARALLEL = (os.cpu_count() or 1) > 1
_PARALLEL_MIN_PIXELS = 2_000_000
# Streaming pays a thread hand-over and a few polls; below this it saves less than it costs.
_STREAM_MIN_PIXELS = 256 * 1024
_STREAM_FORMATS = ("JPEG", "PNG", "WEBP")
# Bytes of stores the decoder must be past a row before the row is read (see the module docstring).
_STREAM_LAG_BYTES = 64 * 1024
_STREAM_POLL_S = 0.0002
_BLOCK_BYTES = 256 * 1024
# Pillow's raw encoder (what Image.tobytes runs) and buffer mapping (what Image.frombuffer runs);
# private, so their absence only costs speed.
_get_encoder = getattr(Image, "_getencoder", None)
_map_buffer = getattr(Image.core, "map_buffer", None)
_helper_idle = threading.Lock()
_helper_pool: ThreadPoolExecutor | None = None


def write_rgb(im: Image.Image, dst: np.ndarray) -> np.ndarray | None:
    """Write ``im`` as RGB 0..1 into ``dst`` ([h,w,3] float32 view); return its 8-bit alpha or None."""
    if im.mode == "F":
        np.copyto(dst, np.asarray(im)[..., None])
        np.clip(dst, 0.0, 1.0, out=dst)  # LANCZOS overshoots
        return None
    width, height = im.size
    alpha = np.empty((height, width), dtype=np.uint8) if im.mode in ("LA", "RGBA") else None
    if _PARALLEL and width * height >= _PARALLEL_MIN_PIXELS and _helper_idle.acquire(blocking=False):
        try:
            middle = height // 2
            upper = _helper().submit(_convert_rows, im, dst, alpha, 0, middle)
            try:
                _convert_rows(im, dst, alpha, middle, height)
            finally:
                upper.result()  # never leave the helper writing into a slot after an error
        finally:
            _helper_idle.release()
    else:
        _convert_rows(im, dst, alpha, 0, height)
    return alpha


def can_stream(im: Image.Image, width: int, height: int) -> bool:
    """Whether opened, not yet loaded ``im`` may be decoded by :func:`stream_rgb` into [height,width,3]."""
    return (
        _PARALLEL
        and _get_encoder is not None
        and _map_buffer is not None
        and im.size == (width, height)
        and width * height >= _STREAM_MIN_PIXELS
        and im.mode == "RGB"
        and im.format in _STREAM_FORMATS
        and "transparency" not in im.info
        and not im.info.get("interlace")
        # Tolerated truncation leaves rows unwritten; the ordinary path handles that case.
        and not ImageFile.LOAD_TRUNCATED_IMAGES
    )


def stream_rgb(im: Image.Image, dst: np.ndarray, load: Callable[[], None]) -> bool:
    """Decode ``im`` by calling ``load`` while converting its finished rows into ``dst``.

    ``im`` must have passed :func:`can_stream`. Returns True when every row of ``dst`` was written;
    False when streaming could not be used or could not be confirmed, in which case ``im`` is (or,
    when the helper was busy, is not yet) loaded and the caller converts it the ordinary way. Errors
    from ``load`` propagate once the helper has stopped writing into ``dst``.
    """
    if not _helper_idle.acquire(blocking=False):
        return False
    try:
        width, height = im.size
        raw = np.empty((height, width, 4), dtype=np.uint8)
        marks = raw[:, -1, 3]
        marks.fill(0)
        try:
            core = _map_buffer(raw, (width, height), "raw", 0, ("RGB", 0, 1))
        except (TypeError, ValueError, OSError):
            return False
        im.im = core
        band = max(1, _BLOCK_BYTES // (3 * width))
        lag = max(2, -(-_STREAM_LAG_BYTES // (4 * width)))
        rows = _Claims(height, band)
        loaded = threading.Event()
        follower = _helper().submit(_follow, core, width, marks, dst, rows, loaded, lag)
        try:
            load()
        except BaseException:
            rows.stop()
            loaded.set()
            follower.exception()  # wait for the helper; the decoding error is the one to report
            raise
        # The decoder ran on this thread, so all its writes are visible here.
        complete = bool(np.all(marks == 255))
        if not complete:
            rows.stop()  # before the helper learns that decoding ended, so it takes no unmarked row
        loaded.set()
        _convert_claims(core, width, dst, rows, height)  # share the last rows with the helper
        follower.result()
        return complete
    finally:
        _helper_idle.release()


class _Claims:
    """Bands of rows handed out once each, to whichever thread asks first."""

    def __init__(self, height: int, band: int) -> None:
        self._lock = threading.Lock()
        self._height = height
        self.band = band
        self.next = 0

    def take(self, limit: int) -> tuple[int, int] | None:
        with self._lock:
            top = self.next
            bottom = min(top + self.band, limit, self._height)
            if bottom <= top:
                return None
            self.next = bottom
            return top, bottom

    def stop(self) -> None:
        with self._lock:
            self.next = self._height


def _follow(
    core, width: int, marks: np.ndarray, dst: np.ndarray, rows: _Claims, loaded: threading.Event, lag: int
) -> None:
    """On the helper: convert bands as the decoder finishes them, until decoding ends and none is left."""
    height, band = marks.shape[0], rows.band
    smallest = max(1, band // 4)  # fewer, larger pieces: each costs an encoder and a few numpy calls
    while True:
        if loaded.is_set():
            _convert_claims(core, width, dst, rows, height)
            return
        top = rows.next
        limit = _finished_below(marks, top, min(top + band + lag, height)) - lag
        claim = rows.take(limit) if limit - top >= smallest else None
        if claim is None:
            loaded.wait(_STREAM_POLL_S)
        else:
            _convert_band(core, width, dst, *claim)


def _finished_below(marks: np.ndarray, top: int, bottom: int) -> int:
    """The first row in ``top:bottom`` the decoder has not finished (``bottom`` if none)."""
    # Rows finish in order, so a binary search reads a handful of marks instead of one per row.
    while top < bottom:
        middle = (top + bottom) // 2
        if marks[middle] == 255:
            top = middle + 1
        else:
            bottom = middle
    return top


def _convert_claims(core, width: int, dst: np.ndarray, rows: _Claims, limit: int) -> None:
    while (claim := rows.take(limit)) is not None:
        _convert_band(core, width, dst, *claim)


def _convert_band(core, width: int, dst: np.ndarray, top: int, bottom: int) -> None:
    for row, block in _raw_row_blocks(core, "RGB", width, 3, top, bottom):
        np.divide(block, _U8_MAX, out=dst[row : row + block.shape[0]], dtype=np.float32)


def _convert_rows(im: Image.Image, dst: np.ndarray, alpha: np.ndarray | None, top: int, bottom: int) -> None:
    """Convert rows ``top:bottom`` of an 8-bit L / LA / RGB / RGBA image into ``dst`` (and ``alpha``)."""
    colour = 1 if im.mode in ("L", "LA") else 3
    try:
        blocks = _raw_row_blocks(im.im, im.mode, im.size[0], len(im.getbands()), top, bottom)
    except (TypeError, ValueError, OSError):
        # Pillow's raw encoder is private; if it ever changes, the array view still works.
        blocks = iter([(top, np.asarray(im)[top:bottom])])
    for row, block in blocks:
        end = row + block.shape[0]
        # Fused cast and scale straight into the destination (L broadcasts to three channels).
        np.divide(block[..., :colour], _U8_MAX, out=dst[row:end], dtype=np.float32)
        if alpha is not None:
            alpha[row:end] = block[..., -1]


def _raw_row_blocks(core, mode: str, width: int, bands: int, top: int, bottom: int):
    """Return an iterator of ``(first_row, uint8 [rows, W, bands])`` blocks covering ``top:bottom``.

    ``np.asarray(im)`` would copy the whole image twice (Pillow's tobytes encodes in 64 KB pieces and
    then joins them); blocks of a few hundred KB are converted while still in cache, which saves a
    quarter of the conversion time. Pillow's raw encoder is what tobytes itself uses. Raises
    TypeError (no encoder), ValueError or OSError before the first block when it cannot be used.
    """
    if _get_encoder is None:
        raise TypeError("Pillow has no raw encoder")
    encoder = _get_encoder(mode, "raw", mode)
    try:
        encoder.setimage(core, (0, top, width, bottom))
    except BaseException:
        encoder.cleanup()
        raise
    return _encoded_blocks(encoder, width, bands, top, bottom)


def _encoded_blocks(encoder, width: int, bands: int, top: int, bottom: int):
    row = top
    try:
        while row < bottom:
            # The raw encoder emits whole rows only.
            _, status, chunk = encoder.encode(max(_BLOCK_BYTES, width * bands))
            block = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, width, bands)
            yield row, block
            row += block.shape[0]
            if status:
                break
    finally:
        encoder.cleanup()
    if row != bottom:
        raise ImageDecodeError(f"Pillow returned {row - top} of {bottom - top} rows")


def _helper() -> ThreadPoolExecutor:
    global _helper_pool
    if _helper_pool is None:
        _helper_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="3dlabs-rows")
    return _helper_pool
