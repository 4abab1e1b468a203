"""Image bytes -> ComfyUI IMAGE / MASK tensors, and the batch each decoded image is written into.

The only module of the pack that turns bytes into tensors, with Pillow's public API, numpy and torch.
IMAGE is ``[B,H,W,3]`` float32 in 0..1, MASK ``[B,H,W]`` with ``mask = 1 - alpha`` (as core LoadImage).

Policies, in one place:

- Size limit: width*height is checked against ``max_pixels`` from the header, before any pixel is
  decoded. Pillow's own decompression-bomb limit is process-global, so it is neither relied on nor
  changed; when Pillow refuses an image on its own, that also becomes :class:`ImageTooLargeError`.
- EXIF orientation is applied, as core LoadImage does. Multi-frame files: the first frame only.
- Modes: everything becomes RGB in 0..1. 8-bit modes divide by 255; ``I;16*`` by 65535; ``I`` by 65535
  when every value fits in 16 bits and by 2**31 - 1 otherwise; negatives clip to 0; ``F`` clips to
  0..1 (NaN -> 0). Palette, L and RGB images with transparency go through RGBA so their alpha
  becomes the mask. CMYK, YCbCr, LAB, HSV: Pillow's conversions.
- A batch takes the first image's size (in prompt order); other sizes are resized to it (LANCZOS).
  Images without alpha get a zero mask.
- Damaged input is an :class:`ImageDecodeError` naming its source and what the bytes look like.

Decoding (:func:`decode`) gives 8-bit pixels, a quarter of the float size; :class:`Batch` writes each
into its slot as it comes and drops it, so a batch costs little more than its own memory.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .api.errors import ValidationError
from .image_open import load_canonical

MAX_PIXELS_DEFAULT = 64 * 1024 * 1024

_RESAMPLE = Image.Resampling.LANCZOS
_U8_MAX = np.float32(255.0)
_RESIZE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}



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

    @property
    def size(self) -> tuple[int, int]:
        return self.array.shape[1], self.array.shape[0]

    @property
    def has_alpha(self) -> bool:
        return self.array.shape[-1] in (2, 4)


# --- public API -------------------------------------------------------------------------------


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, source: str = "", preview: int = 0) -> Pixels:
    """Decode one image's bytes; with ``preview`` also keep a copy at most that many pixels wide and high."""
    im, mode, fmt = load_canonical(data, max_pixels, source or "image")
    array = np.asarray(im)  # one copy out of Pillow's memory; read-only, and only ever read
    thumb = _thumbnail(im, preview) if preview else None
    return Pixels(array if array.ndim == 3 else array[..., None], mode, fmt, thumb)


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, source: str = "") -> DecodedImage:
    """Decode one image's bytes into an RGB float tensor and, when it has alpha, a mask."""
    px = decode(data, max_pixels=max_pixels, source=source)
    width, height = px.size
    image = torch.from_numpy(np.empty((height, width, 3), dtype=np.float32))
    mask = torch.from_numpy(np.empty((height, width), dtype=np.float32)) if px.has_alpha else None
    write(px, image, mask)
    return DecodedImage(image=image, mask=mask, width=width, height=height, mode=px.mode, format=px.format)


def write(px: Pixels, out: torch.Tensor, mask_out: torch.Tensor | None) -> None:
    """Write ``px`` into ``out`` ([H,W,3] float32, e.g. a batch slot), resized to it when it differs;
    its alpha into ``mask_out`` as 1 - alpha (left alone when the picture has none)."""
    arr = px.array
    height, width = out.shape[0], out.shape[1]
    if (arr.shape[1], arr.shape[0]) != (width, height):
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
    """

    def __init__(self, jobs: int) -> None:
        self._counts: list[int | None] = [None] * jobs
        self._waiting: dict[int, list[Pixels]] = {}
        self._written: set[int] = set()
        self.images: torch.Tensor | None = None
        self.masks: torch.Tensor | None = None
        self._lock = threading.Lock()

    def put(self, job: int, pictures: list[Pixels]) -> None:
        with self._lock:
            self._counts[job] = len(pictures)
            self._waiting[job] = pictures
            if self.images is None:
                first = next((j for j, n in enumerate(self._counts) if n != 0), None)
                if first is None or self._counts[first] is None:
                    return
                width, height = self._waiting[first][0].size
                self.images, self.masks = _empty_batch(len(self._counts), width, height)
            ready = [(j, self._waiting.pop(j)[0]) for j in list(self._waiting) if self._counts[j] == 1]
            self._written.update(j for j, _ in ready)
        for j, px in ready:  # each slot is written by one thread only, outside the lock
            write(px, self.images[j], self.masks[j])

    def result(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The batch in job order once every job has given its pictures; None when there are none."""
        counts = self._counts
        if self.images is None or any(n is None for n in counts):
            return None
        if all(n == 1 for n in counts):
            return self.images, self.masks
        total, (_, height, width, _) = sum(counts), self.images.shape  # type: ignore[arg-type]
        images, masks = _empty_batch(total, width, height)
        slot = 0
        for j in range(len(counts)):
            if j in self._written:
                images[slot].copy_(self.images[j])
                masks[slot].copy_(self.masks[j])  # type: ignore[index]
                slot += 1
            for px in self._waiting.pop(j, []):
                write(px, images[slot], masks[slot])
                slot += 1
        self.images = self.masks = None
        return images, masks


def images_to_batch(items: list[bytes], *, max_pixels: int = MAX_PIXELS_DEFAULT,
                    sources: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``items`` into one IMAGE [B,H,W,3] and MASK [B,H,W] at the first image's size, in order.

    One image at a time, each written into its slot and dropped: memory peaks at the batch plus one
    image's pixels, never a stack copy.
    """
    if not items:
        raise ValidationError("There are no images to put in a batch (the list is empty)")
    if sources is not None and len(sources) != len(items):
        raise ValueError(f"sources has {len(sources)} entries for {len(items)} images")
    batch = Batch(len(items))
    for i, data in enumerate(items):
        batch.put(i, [decode(data, max_pixels=max_pixels, source=batch_label(i, sources[i] if sources else ""))])
    return batch.result()  # type: ignore[return-value]


def batch_label(index: int, source: str) -> str:
    """How an image is named in errors: its place in the batch and where it came from."""
    return f"image at batch index {index}" + (f" ({source})" if source else "")


def empty_image(width: int = 64, height: int = 64, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Black IMAGE [B,H,W,3] and zero MASK [B,H,W]: a placeholder where no result exists."""
    _check_dims(width, height, batch)
    return (
        torch.zeros((batch, height, width, 3), dtype=torch.float32),
        torch.zeros((batch, height, width), dtype=torch.float32),
    )


def empty_mask(count: int, width: int, height: int) -> torch.Tensor:
    """Zero MASK [count,H,W] to go with placeholder images (nothing masked)."""
    _check_dims(width, height, count)
    return torch.zeros((count, height, width), dtype=torch.float32)


def placeholder_images(count: int, width: int, height: int, text: str | None = None) -> torch.Tensor:
    """Mid-grey IMAGE [count,H,W,3] standing in for images not generated (dry run, wait off).

    ``text`` (e.g. "dry run") is drawn once in darker grey, so a placeholder is never mistaken for a
    result; the frames are otherwise flat, so this stays cheap at any size.
    """
    _check_dims(width, height, count)
    images = torch.full((count, height, width, 3), 0.5, dtype=torch.float32)
    if text:
        shade = _text_shade(text, width, height)
        if shade is not None:
            # Where the text is drawn the grey goes from 0.5 down to 0.2.
            arr = images.numpy()
            np.subtract(arr, (shade * np.float32(0.3 / 255.0))[None, :, :, None], out=arr)
    return images


def tensor_to_png_bytes(image: torch.Tensor, *, compress_level: int = 1) -> bytes:
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
    Image.fromarray(pixels.to(torch.uint8).numpy(), "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


# --- small helpers ----------------------------------------------------------------------------------


def _resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    channels = arr.shape[-1]
    im = Image.fromarray(arr[..., 0], "F") if arr.dtype != np.uint8 else (
        Image.fromarray(arr[..., 0] if channels == 1 else arr, _RESIZE_MODES[channels]))
    out = np.asarray(im.resize((width, height), _RESAMPLE))
    return out if out.ndim == 3 else out[..., None]


def _thumbnail(im: Image.Image, size: int) -> Image.Image | None:
    """A small RGB copy for the node's preview (None if it cannot be made): Pillow's box reduction is
    cheap at any size, and a preview must never cost the picture."""
    try:
        return _reduced(im, size)
    except Exception:  # noqa: BLE001
        return None


def _reduced(im: Image.Image, size: int) -> Image.Image:
    factor = max(1, -(-max(im.size) // size))
    small = im.reduce(factor) if factor > 1 and im.mode != "F" else im.copy()
    if im.mode == "F":
        small = Image.fromarray((np.asarray(small) * 255).astype(np.uint8), "L")
        small.thumbnail((size, size))
    return small if small.mode == "RGB" else small.convert("RGB")


def _empty_batch(count: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised IMAGE [count,H,W,3] and zeroed MASK [count,H,W] (slots without alpha keep the zeros).

    Both come from numpy: above glibc's mmap threshold it asks for fresh, lazily zeroed pages (and
    transparent huge pages), so the zero mask costs nothing until a slot with alpha writes to it.
    """
    return (torch.from_numpy(np.empty((count, height, width, 3), dtype=np.float32)),
            torch.from_numpy(np.zeros((count, height, width), dtype=np.float32)))


def _check_dims(width: int, height: int, count: int) -> None:
    if width < 1 or height < 1 or count < 1:
        raise ValidationError(f"images need a positive size and count, not {width}x{height} x{count}")


def _text_shade(text: str, width: int, height: int) -> np.ndarray | None:
    """Draw ``text`` centred on a black L canvas; return it as uint8 [H,W], or None if it cannot."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    size = max(8, min(height // 8, width // max(4, len(text))))
    try:
        font = ImageFont.load_default(size=size)
    except (OSError, ValueError, TypeError, ImportError):
        font = ImageFont.load_default()
    try:
        draw.text((width / 2, height / 2), text, fill=255, font=font, anchor="mm")
    except (OSError, ValueError):
        return None
    return np.asarray(canvas)
