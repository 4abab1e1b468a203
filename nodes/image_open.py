"""Opening image bytes with Pillow: refusing what must not be decoded, and naming what is damaged.

Before any pixel is decoded the header's width*height is checked against the caller's limit (Pillow's
own decompression-bomb limit is process-global, so it is neither relied on nor changed). Decoded
pictures are brought to a few canonical modes. Errors say what the bytes look like (a damaged PNG,
an HTML sign-in page, JSON) and name their source, so that the paid job behind them can be found.
Truncation is detected by Pillow unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set; that is a process
global (core LoadImage flips it briefly), so it is left alone here.
"""

from __future__ import annotations

import io
import string

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .api.errors import ImageDecodeError, ImageTooLargeError

_U16_MAX = np.float32(65535.0)
_I32_MAX = np.float32(2**31 - 1)

# Signatures of formats a result may come in, so that a damaged file is reported as a damaged PNG
# rather than as "not an image".
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_PRINTABLE = frozenset(string.printable.encode())


def _open_header(data: bytes, max_pixels: int, label: str) -> Image.Image:
    """Open ``data`` without decoding pixels, and refuse it by the size its header gives."""
    if not data:
        raise ImageDecodeError(f"{label}: empty body (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's limit is global and may be lower than the caller's: read the size without it.
        im = _open_without_pillow_limit(data)
        if im is None:
            raise ImageTooLargeError(f"{label}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_not_an_image_detail(data, label)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow plugins raise many types for damaged headers
        raise ImageDecodeError(_damaged_detail(data, label, None, exc)) from exc

    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label}: {width}x{height} ({_mpx(width * height)}) is over the limit of "
            f"{max_pixels} pixels ({_mpx(max_pixels)})"
        )
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{label}: the header gives an empty size {width}x{height}")
    return im


def _load(im: Image.Image, data: bytes, label: str) -> None:
    """Decode the pixels of an opened image (a no-op once done), naming what went wrong."""
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders report truncation as OSError, SyntaxError, zlib...
        raise ImageDecodeError(_damaged_detail(data, label, im.format, exc)) from exc


def _orient(im: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the user the picture
        pass


def _open_without_pillow_limit(data: bytes) -> Image.Image | None:
    """Open through Pillow's format registry, which skips ``Image.open``'s global pixel limit."""
    Image.init()
    prefix = bytes(data[:16])
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        accepted = accept is None or accept(prefix)
        if not accepted or isinstance(accepted, str):
            continue
        try:
            return factory(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - same tolerance as Image.open: try the next plugin
            continue
    return None


def _to_canonical_mode(im: Image.Image, label: str) -> Image.Image:
    """Return ``im`` in RGB, RGBA, L, LA (8-bit) or F (already scaled to 0..1)."""
    mode = im.mode
    if mode in ("RGB", "L"):
        if "transparency" in im.info:
            return im.convert("RGBA" if mode == "RGB" else "LA")
        return im
    if mode in ("RGBA", "LA"):
        return im
    if mode in ("P", "PA"):
        palette_alpha = im.palette is not None and im.palette.mode == "RGBA"
        has_alpha = mode == "PA" or "transparency" in im.info or palette_alpha
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("La", "RGBa"):
        # Premultiplied alpha (lower-case band name) is undone by Pillow's conversion.
        return im.convert(mode.upper())
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_bit_to_float(im)
    try:
        return im.convert("RGBA" if "A" in im.getbands() else "RGB")
    except ValueError as exc:
        raise ImageDecodeError(f"{label}: Pillow mode {mode} cannot be converted to RGB ({exc})") from exc


def _high_bit_to_float(im: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float single-channel image to an F image in 0..1."""
    mode = im.mode
    try:
        arr = np.asarray(im)
    except (TypeError, ValueError, KeyError):
        # Rare variants (I;16S...) have no array view; Pillow's own widening keeps their values.
        im, mode = im.convert("I"), "I"
        arr = np.asarray(im)
    if mode == "F":
        values = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    else:
        peak = int(arr.max()) if arr.size else 0
        divisor = _U16_MAX if mode.startswith("I;16") or peak <= 65535 else _I32_MAX
        values = np.divide(arr, divisor, dtype=np.float32)
    np.clip(values, 0.0, 1.0, out=values)
    return Image.fromarray(values, "F")


def _mpx(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f} Mpx"


def _sniff_format(data: bytes) -> str | None:
    head = bytes(data[:16])
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return "AVIF/HEIF"
    return None


def _not_an_image_detail(data: bytes, label: str) -> str:
    fmt = _sniff_format(data)
    if fmt:
        return f"{label}: truncated or corrupt {fmt} data ({len(data)} bytes); Pillow cannot read its header"
    head = bytes(data[:200]).lstrip(b"\xef\xbb\xbf \t\r\n")
    preview = head[:60]
    if preview[:1] == b"<":
        kind = "it looks like HTML or XML (an error or sign-in page?)"
    elif preview[:1] in (b"{", b"["):
        kind = "it looks like JSON (an API answer rather than the image?)"
    elif preview and all(byte in _PRINTABLE for byte in preview):
        kind = "it looks like text"
    else:
        return f"{label}: not an image ({len(data)} bytes starting {bytes(data[:16]).hex(' ')})"
    text = " ".join(preview.decode("utf-8", "replace").split())
    return f"{label}: not an image ({len(data)} bytes); {kind}: {text!r}"


def _damaged_detail(data: bytes, label: str, fmt: str | None, exc: BaseException) -> str:
    fmt = fmt or _sniff_format(data) or "image"
    return f"{label}: truncated or corrupt {fmt} data ({len(data)} bytes): {exc}"


def load_canonical(data: bytes, max_pixels: int, label: str) -> tuple[Image.Image, str, str]:
    """Open, check, decode and orient ``data``; the picture in RGB, RGBA, L, LA or F (0..1), with the
    mode and format the file had."""
    im = _open_header(data, max_pixels, label)
    _load(im, data, label)
    _orient(im)
    mode, fmt = im.mode, im.format or ""
    return _to_canonical_mode(im, label), mode, fmt
