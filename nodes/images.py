"""Image bytes -> ComfyUI IMAGE / MASK tensors (Pillow's public API), and the batch they are written into.

As core LoadImage: IMAGE ``[B,H,W,3]`` float32 in 0..1, MASK ``[B,H,W]`` = 1 - alpha, EXIF orientation
applied, the first frame of multi-frame files. Only the formats 3DLabs sends (PNG, JPEG, WebP) are
opened: other plugins may decode inside ``Image.open`` (an ICO's embedded PNG), before any size check.
Pillow's decompression-bomb limit and ``LOAD_TRUNCATED_IMAGES`` are process-global, so neither is relied
on nor changed: ``max_pixels`` is checked from the header before any pixel is decoded, and so is the
node's :class:`PixelBudget`. Damaged input is an ImageDecodeError naming its source and what the bytes
look like, so that the paid job behind them can be found. A batch takes the first image's size in prompt
order; :class:`Batch` writes each 8-bit picture into its slot as it comes and drops it, so a batch costs
little more than its own memory.
"""

from __future__ import annotations

import io
import re
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .api.errors import ImageDecodeError, ImageTooLargeError, ValidationError
from .pixel_budget import PixelBudget

MAX_PIXELS_DEFAULT = 64 * 1024 * 1024
API_FORMATS = ("PNG", "JPEG", "WEBP")  # what 3DLabs (Replicate, Gemini) sends; ``formats=None`` opens any

_U8_MAX = np.float32(255.0)
_RESIZE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# Signatures of formats a result may come in, so that a damaged file is reported as a damaged PNG
# rather than as "not an image", and a file of another format by its name.
_SIGNATURES = {"PNG": rb"\x89PNG\r\n\x1a\n", "JPEG": rb"\xff\xd8\xff", "GIF": rb"GIF8[79]a", "BMP": rb"BM",
               "TIFF": rb"II\*\x00|MM\x00\*", "WEBP": rb"RIFF....WEBP", "AVIF/HEIF": rb"....ftyp",
               "ICO": rb"\x00\x00\x01\x00"}
_PRINTABLE = frozenset(string.printable.encode())


@dataclass
class DecodedImage:
    """One decoded picture: ``image`` [H,W,3] float32 0..1, ``mask`` [H,W] (1 - alpha) or None."""

    image: torch.Tensor
    mask: torch.Tensor | None
    width: int
    height: int
    mode: str
    format: str


@dataclass
class Pixels:
    """One decoded picture before it goes into a batch: ``array`` is uint8 [H,W,C] (C = 1 grey, 2 grey
    and alpha, 3 RGB, 4 RGBA), or float32 [H,W,1] in 0..1 for 16- and 32-bit sources."""

    array: np.ndarray
    mode: str
    format: str
    preview: Image.Image | None = None


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, source: str = "", preview: int = 0,
           budget: PixelBudget | None = None, formats: tuple[str, ...] | None = API_FORMATS) -> Pixels:
    """Decode one image's bytes; with ``preview`` also keep a copy at most that many pixels wide and high.

    ``budget`` is charged the header's pixel count before anything is decoded; ``formats`` are Pillow's
    names of the formats opened (None: any it knows, for trusted local files only).
    """
    label = source or "image"
    im = _open(data, max_pixels, label, formats)
    if budget is not None:
        budget.charge(im.size[0] * im.size[1], f"{label} ({im.size[0]}x{im.size[1]})")
    try:
        im.load()
    except _BOMB as exc:
        raise ImageTooLargeError(f"{label}: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders report truncation as OSError, SyntaxError, zlib...
        raise ImageDecodeError(_damaged(data, label, im.format, exc)) from exc
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the user the picture
        pass
    mode, fmt = im.mode, im.format or ""
    im = _canonical(im, label)
    array = np.asarray(im)  # one copy out of Pillow's memory; read-only, and only ever read
    thumb = _thumbnail(im, preview) if preview else None
    return Pixels(array if array.ndim == 3 else array[..., None], mode, fmt, thumb)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, source: str = "",
                 formats: tuple[str, ...] | None = API_FORMATS) -> DecodedImage:
    """Decode one image's bytes into an RGB float tensor and, when it has alpha, a mask."""
    px = decode(data, max_pixels=max_pixels, source=source, formats=formats)
    height, width, channels = px.array.shape
    images, masks = _empty_batch(1, width, height)  # numpy's allocation: see _empty_batch
    image, mask = images[0], (masks[0] if channels in (2, 4) else None)
    write(px, image, mask)
    return DecodedImage(image, mask, width, height, px.mode, px.format)


def write(px: Pixels, out: torch.Tensor, mask_out: torch.Tensor | None) -> None:
    """Write ``px`` into ``out`` ([H,W,3] float32, e.g. a batch slot), resized to it when it differs;
    its alpha into ``mask_out`` as 1 - alpha (left alone when the picture has none)."""
    arr = px.array
    height, width = out.shape[0], out.shape[1]
    if arr.shape[:2] != (height, width):
        arr = _resize(arr, width, height)
    colour = arr[..., :3] if arr.shape[-1] >= 3 else np.broadcast_to(arr[..., :1], (height, width, 3))
    dst = out.numpy()
    if arr.dtype == np.uint8:
        # The same float32 values as core LoadImage (x / 255 in float32), in one pass with no temporary.
        np.divide(colour, _U8_MAX, out=dst, dtype=np.float32)
    else:
        dst[...] = colour
    if mask_out is not None and arr.shape[-1] in (2, 4):
        m = mask_out.numpy()
        np.divide(arr[..., -1], _U8_MAX, out=m, dtype=np.float32)
        np.subtract(np.float32(1.0), m, out=m)


class Batch:
    """IMAGE and MASK for ``jobs`` results, filled as each result's pixels arrive (any thread, any order).

    The batch takes the first picture's size in job order, so it is made once that picture is known;
    pictures that come before it wait as 8-bit pixels. A job is expected to give one picture: its slot
    is its place. When a job gives none or several, :meth:`result` lays the batch out again at the end.
    With a ``budget``, :meth:`decode` and the batch itself stay within it.
    """

    def __init__(self, jobs: int, budget: PixelBudget | None = None) -> None:
        self._counts: list[int | None] = [None] * jobs
        self._waiting: dict[int, list[Pixels]] = {}
        self.images: torch.Tensor | None = None
        self.masks: torch.Tensor | None = None
        self.budget = budget
        self._lock = threading.Lock()

    def decode(self, fetch: Callable[[], bytes], *, source: str = "", preview: int = 0) -> Pixels:
        """The bytes ``fetch()`` downloads, decoded under the budget; not downloaded once it is spent."""
        if self.budget is not None:
            self.budget.check()
        return decode(fetch(), source=source, preview=preview, budget=self.budget)

    def put(self, job: int, pictures: list[Pixels]) -> None:
        with self._lock:
            self._counts[job] = len(pictures)
            self._waiting[job] = pictures
            if self.images is None:
                first = next((j for j, n in enumerate(self._counts) if n != 0), None)
                if first is None or self._counts[first] is None:
                    return
                height, width = self._waiting[first][0].array.shape[:2]
                if self.budget is not None:
                    self.budget.fits(len(self._counts), width, height)
                self.images, self.masks = _empty_batch(len(self._counts), width, height)
            ready = [(j, self._waiting.pop(j)[0]) for j in list(self._waiting) if self._counts[j] == 1]
        for j, px in ready:  # each slot is written by one thread only, outside the lock
            write(px, self.images[j], self.masks[j])

    def result(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The batch in job order once every job has given its pictures; None when there are none."""
        counts = self._counts
        if self.images is None or None in counts:
            return None
        if all(n == 1 for n in counts):
            return self.images, self.masks
        _, height, width, _ = self.images.shape
        if self.budget is not None:
            self.budget.fits(sum(counts), width, height)
        images, masks = _empty_batch(sum(counts), width, height)
        slot = 0
        for j, n in enumerate(counts):
            if n == 1:  # written into the first layout's slot already
                images[slot].copy_(self.images[j])
                masks[slot].copy_(self.masks[j])  # type: ignore[index]
                slot += 1
            for px in self._waiting.pop(j, []):
                write(px, images[slot], masks[slot])
                slot += 1
        self.images = self.masks = None
        return images, masks


def images_to_batch(items: list[bytes], *, max_pixels: int = MAX_PIXELS_DEFAULT,
                    source: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``items`` into one IMAGE [B,H,W,3] and MASK [B,H,W] at the first image's size, in order.

    One image at a time, each written into its slot and dropped: memory peaks at the batch plus one
    image's pixels, never a stack copy.
    """
    if not items:
        raise ValidationError("There are no images to put in a batch (the list is empty)")
    batch = Batch(len(items))
    for i, data in enumerate(items):
        batch.put(i, [decode(data, max_pixels=max_pixels, source=batch_label(i, source))])
    return batch.result()  # type: ignore[return-value]


def batch_label(index: int, source: str) -> str:
    """How an image is named in errors: its place in the batch and where it came from."""
    return f"image at batch index {index}" + (f" ({source})" if source else "")


def empty_image(width: int = 64, height: int = 64, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Black IMAGE [B,H,W,3] and zero MASK [B,H,W]: a placeholder where no result exists."""
    return _filled(0.0, batch, width, height, 3), empty_mask(batch, width, height)


def empty_mask(count: int, width: int, height: int) -> torch.Tensor:
    """Zero MASK [count,H,W] to go with placeholder images (nothing masked)."""
    return _filled(0.0, count, width, height)


def placeholder_images(count: int, width: int, height: int) -> torch.Tensor:
    """Mid-grey IMAGE [count,H,W,3] standing in for images not generated (dry run, wait off)."""
    return _filled(0.5, count, width, height, 3)


def tensor_to_png_bytes(image: torch.Tensor) -> bytes:
    """Encode one IMAGE ([H,W,3] or [1,H,W,3], 0..1) as PNG bytes."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an IMAGE of shape [H,W,3], got {list(image.shape)}")
    # Rounding (not truncation as in core SaveImage) makes bytes -> tensor -> bytes lossless.
    pixels = image.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    buf = io.BytesIO()
    Image.fromarray(pixels.to(torch.uint8).numpy(), "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --- opening the bytes ------------------------------------------------------------------------------


def _open(data: bytes, max_pixels: int, label: str, formats: tuple[str, ...] | None) -> Image.Image:
    """Open ``data`` without decoding pixels, and refuse it by the size its header gives."""
    if not data:
        raise ImageDecodeError(f"{label}: empty body (0 bytes)")
    try:
        # PNG, JPEG and WebP read only their header here; the other plugins are never tried.
        im = Image.open(io.BytesIO(data), formats=formats)
    except _BOMB as exc:
        # Pillow's limit is global and may be lower than the caller's: read the size without it.
        im = _open_without_pillow_limit(data)
        if im is None:
            raise ImageTooLargeError(f"{label}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_not_an_image(data, label, formats)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow plugins raise many types for damaged headers
        raise ImageDecodeError(_damaged(data, label, None, exc)) from exc
    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{label}: {width}x{height} ({width * height / 1e6:.1f} Mpx) is over the limit "
                                 f"of {max_pixels} pixels ({max_pixels / 1e6:.1f} Mpx)")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{label}: the header gives an empty size {width}x{height}")
    return im


def _open_without_pillow_limit(data: bytes) -> Image.Image | None:
    """Open with the format's own image class (lazy, as ``Image.open``), which skips its global pixel limit."""
    from PIL import JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # loaded by Image.open already

    plugins = {"PNG": PngImagePlugin.PngImageFile, "JPEG": JpegImagePlugin.JpegImageFile,
               "WEBP": WebPImagePlugin.WebPImageFile}
    plugin = plugins.get(_sniff_format(data) or "")
    try:
        return plugin(io.BytesIO(data)) if plugin is not None else None
    except Exception:  # noqa: BLE001 - a damaged header: refused as too large, as Pillow said
        return None


def _canonical(im: Image.Image, label: str) -> Image.Image:
    """``im`` in RGB, RGBA, L, LA (8-bit) or F (already scaled to 0..1)."""
    mode = im.mode
    if mode in ("RGB", "L") and "transparency" in im.info:
        return im.convert("RGBA" if mode == "RGB" else "LA")
    if mode in ("RGB", "L", "RGBA", "LA"):
        return im
    if mode in ("P", "PA"):
        palette_alpha = im.palette is not None and im.palette.mode == "RGBA"
        return im.convert("RGBA" if mode == "PA" or "transparency" in im.info or palette_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("La", "RGBa"):  # premultiplied alpha (lower-case band name), undone by Pillow's conversion
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
        divisor = np.float32(65535 if mode.startswith("I;16") or peak <= 65535 else 2**31 - 1)
        values = np.divide(arr, divisor, dtype=np.float32)
    np.clip(values, 0.0, 1.0, out=values)
    return Image.fromarray(values, "F")


def _sniff_format(data: bytes) -> str | None:
    return next((fmt for fmt, sig in _SIGNATURES.items() if re.match(sig, bytes(data[:16]), re.DOTALL)), None)


def _not_an_image(data: bytes, label: str, formats: tuple[str, ...] | None = None) -> str:
    fmt = _sniff_format(data)
    if fmt and formats is not None and fmt not in formats:
        return (f"{label}: a file in {fmt} format ({len(data)} bytes); only PNG, JPEG and WebP are opened, the "
                "formats 3DLabs sends")
    if fmt:
        return f"{label}: truncated or corrupt {fmt} data ({len(data)} bytes); Pillow cannot read its header"
    preview = bytes(data[:200]).lstrip(b"\xef\xbb\xbf \t\r\n")[:60]
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


def _damaged(data: bytes, label: str, fmt: str | None, exc: BaseException) -> str:
    return f"{label}: truncated or corrupt {fmt or _sniff_format(data) or 'image'} data ({len(data)} bytes): {exc}"


# --- small helpers ----------------------------------------------------------------------------------


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    channels = arr.shape[-1]
    im = Image.fromarray(arr[..., 0], "F") if arr.dtype != np.uint8 else (
        Image.fromarray(arr[..., 0] if channels == 1 else arr, _RESIZE_MODES[channels]))
    out = np.asarray(im.resize((width, height), Image.Resampling.LANCZOS))
    return out if out.ndim == 3 else out[..., None]


def _thumbnail(im: Image.Image, size: int) -> Image.Image | None:
    """A small RGB copy for the node's preview (None if it cannot be made): Pillow's box reduction is
    cheap at any size, and a preview must never cost the picture."""
    try:
        if im.mode == "F":
            small = Image.fromarray((np.asarray(im) * 255).astype(np.uint8), "L")
            small.thumbnail((size, size))
        else:
            factor = max(1, -(-max(im.size) // size))
            small = im.reduce(factor) if factor > 1 else im.copy()
        return small if small.mode == "RGB" else small.convert("RGB")
    except Exception:  # noqa: BLE001
        return None


def _empty_batch(count: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised IMAGE [count,H,W,3] and zeroed MASK [count,H,W] (slots without alpha keep the zeros).

    Both come from numpy: above glibc's mmap threshold it asks for fresh, lazily zeroed pages (and
    transparent huge pages), so the zero mask costs nothing until a slot with alpha writes to it.
    """
    return (torch.from_numpy(np.empty((count, height, width, 3), dtype=np.float32)),
            torch.from_numpy(np.zeros((count, height, width), dtype=np.float32)))


def _filled(value: float, count: int, width: int, height: int, *channels: int) -> torch.Tensor:
    if width < 1 or height < 1 or count < 1:
        raise ValidationError(f"images need a positive size and count, not {width}x{height} x{count}")
    return torch.full((count, height, width, *channels), value, dtype=torch.float32)
