"""Image bytes -> ComfyUI IMAGE / MASK tensors, and batching several results into one IMAGE.

The only module of the pack that turns bytes into tensors. It knows no HTTP: callers hand it the bytes
of a downloaded result (or of a file) and get back float32 tensors in ComfyUI's conventions: IMAGE is
``[B,H,W,3]`` in 0..1, MASK is ``[B,H,W]`` with ``mask = 1 - alpha`` (as core LoadImage does).

Policies, in one place:

- Size limit: width*height is checked against ``max_pixels`` from the header, before any pixel is
  decoded. Pillow's own decompression-bomb limit is process-global, so it is neither relied on nor
  changed; when Pillow refuses an image on its own, that also becomes :class:`ImageTooLargeError`.
- EXIF orientation is applied, as core LoadImage does.
- Multi-frame files (animated GIF / WebP / APNG, MPO): the first frame only. A 3DLabs result is one
  picture; a stray animation must not turn into a batch of a different length.
- Modes: everything becomes RGB in 0..1. 8-bit modes divide by 255; ``I;16*`` by 65535; ``I`` (32-bit
  signed) by 65535 when every value fits in 16 bits (such images almost always come from 16-bit
  sources) and by 2**31 - 1 otherwise (its largest positive value); negatives clip to 0. ``F`` clips
  to 0..1 (NaN -> 0). Palette images with transparency, and L / RGB images with a transparent colour,
  go through RGBA so their alpha becomes the mask. CMYK, YCbCr, LAB, HSV: Pillow's conversions.
- Batches take the first image's size. Other sizes follow ``fit``: ``resize`` (Pillow LANCZOS to the
  exact size, aspect ignored), ``pad`` (fit inside, centred, black bars whose MASK is 1.0 = masked),
  ``crop`` (cover, centre crop) or ``error``. Images without alpha get a zero mask, so a batch with no
  alpha at all returns MASK zeros of ``[B,H,W]`` (core LoadImage returns a 64x64 zero mask for a single
  image; a batch needs one mask per image of the image's size for downstream mask nodes).

Truncation is detected by Pillow unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set; it is a process
global (core LoadImage flips it briefly while retrying a broken file), so it is left alone here.
"""

from __future__ import annotations

import io
import os
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from . import image_rows
from .api.errors import ImageDecodeError, ImageTooLargeError, ValidationError

MAX_PIXELS_DEFAULT = 64 * 1024 * 1024
FIT_POLICIES = ("resize", "pad", "crop", "error")

_RESAMPLE = Image.Resampling.LANCZOS
_U8_MAX = np.float32(255.0)
_U16_MAX = np.float32(65535.0)
_I32_MAX = np.float32(2**31 - 1)
_EXIF_ORIENTATION = 0x0112

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

_FRESH_FROM_KERNEL_BYTES = 32 * 1024 * 1024
# A batch decodes several images at once: Pillow's decoders and the conversion release the GIL, and
# one decode keeps a second core only partly busy. Each image in flight holds its own temporaries.
BATCH_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class DecodedImage:
    """One decoded picture: ``image`` [H,W,3] float32 0..1, ``mask`` [H,W] (1 - alpha) or None."""

    image: torch.Tensor
    mask: torch.Tensor | None
    width: int
    height: int
    mode: str
    format: str


# --- public API -------------------------------------------------------------------------------


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS_DEFAULT, source: str = "") -> DecodedImage:
    """Decode one image's bytes into an RGB float tensor and, when it has alpha, a mask."""
    label = source or "image"
    im = _open_header(data, max_pixels, label)
    width, height = im.size
    image = _empty_f32((height, width, 3))
    if _streamed(im, data, image, label):
        return DecodedImage(image=image, mask=None, width=width, height=height, mode=im.mode, format=im.format)
    _load(im, data, label)
    _orient(im)
    mode, fmt = im.mode, im.format or ""
    im = _to_canonical_mode(im, label)
    if im.size != (width, height):  # turned by its EXIF orientation
        width, height = im.size
        image = _empty_f32((height, width, 3))
    mask = _fill(im, image, None, "error", label)
    return DecodedImage(image=image, mask=mask, width=width, height=height, mode=mode, format=fmt)


def decode_into(
    data: bytes,
    out: torch.Tensor,
    *,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    source: str = "",
    fit: str = "resize",
) -> torch.Tensor | None:
    """Decode one image straight into ``out`` ([H,W,3] float32, e.g. one slot of a batch).

    An image of another size is fitted to ``out`` by the ``fit`` policy. Returns the [H,W] mask, or
    None when the image has no alpha and nothing was padded.
    """
    _check_fit(fit)
    _check_out(out)
    return _decode_slot(data, out, None, max_pixels, fit, source or "image")


def images_to_batch(
    items: list[bytes],
    *,
    fit: str = "resize",
    max_pixels: int = MAX_PIXELS_DEFAULT,
    sources: list[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``items`` into one IMAGE [B,H,W,3] and MASK [B,H,W] at the first image's size.

    The batch is allocated once and each image is decoded into its own slot, so memory peaks at the
    output plus the temporaries of the images being decoded at that moment (one per core, at most
    four): never all decoded images at once, never a stack copy.
    """
    if not items:
        raise ValidationError("There are no images to put in a batch (the list is empty)")
    _check_fit(fit)
    if sources is not None and len(sources) != len(items):
        raise ValueError(f"sources has {len(sources)} entries for {len(items)} images")
    labels = [_batch_label(i, sources[i] if sources else "") for i in range(len(items))]
    images, masks = _start_batch(items[0], len(items), max_pixels, fit, labels[0], None)
    _decode_rest(items, images, masks, max_pixels, fit, labels)
    return images, masks


def start_batch(
    first: bytes,
    count: int,
    *,
    fit: str = "resize",
    max_pixels: int = MAX_PIXELS_DEFAULT,
    source: str = "",
    prepared: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE [count,H,W,3] and MASK [count,H,W] at ``first``'s size, with ``first`` decoded into slot 0.

    The other slots are uninitialised (masks zero) until :func:`decode_batch_slot` fills them; together
    they give what :func:`images_to_batch` gives, for callers that get the images one at a time.
    ``prepared`` (from :func:`prepare_batch`) is used when it has the size the batch turns out to have.
    """
    _check_fit(fit)
    _check_dims(1, 1, count)
    return _start_batch(first, count, max_pixels, fit, _batch_label(0, source), prepared)


def prepare_batch(count: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An empty batch for :func:`start_batch`, its IMAGE memory already written once.

    The first write to fresh memory is what costs: on this VM 0.14 ms per MB for memory freed a moment
    ago, and up to 4 ms per MB once its host has taken freed memory back. Done while the jobs still
    run, that cost is off the time between the last job ending and the node returning. The MASK stays
    untouched: it is zero, and most slots never write to it.
    """
    _check_dims(width, height, count)
    images, masks = _empty_batch(count, width, height)
    images.numpy().fill(0.0)
    return images, masks


def decode_batch_slot(
    data: bytes,
    batch: tuple[torch.Tensor, torch.Tensor],
    index: int,
    *,
    fit: str = "resize",
    max_pixels: int = MAX_PIXELS_DEFAULT,
    source: str = "",
) -> None:
    """Decode ``data`` into slot ``index`` (not 0) of a batch from :func:`start_batch`, fitted by ``fit``."""
    _check_fit(fit)
    images, masks = batch
    _decode_slot(data, images[index], masks[index], max_pixels, fit, _batch_label(index, source))


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
    arr = pixels.to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


# --- opening and checking ---------------------------------------------------------------------


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


def _streamed(im: Image.Image, data: bytes, out: torch.Tensor, label: str) -> bool:
    """Decode opened ``im`` straight into ``out`` of its own size, converting rows while decoding.

    True when ``out`` holds the finished picture. False when this fast path does not apply (the image
    is then loaded, or not yet, and the caller goes on the ordinary way): another mode or format, a
    different size, the helper thread busy, or an EXIF orientation to apply after all.
    """
    if not image_rows.can_stream(im, out.shape[1], out.shape[0]):
        return False
    # The bytes are in memory already: the decoder gets them in one piece rather than in 64 KB reads, so
    # the decoding thread does not need the GIL back between pieces while the helper converts (a thread
    # waiting for the GIL can wait a whole switch interval). WebP's plugin decodes the frame first and
    # then copies it in, hence the decoded size.
    im.decodermaxblock = max(im.decodermaxblock, len(data), 4 * im.size[0] * im.size[1])
    if not image_rows.stream_rgb(im, out.numpy(), lambda: _load(im, data, label)):
        return False
    try:
        # Read after decoding: a PNG may carry its EXIF block after the pixels.
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as in _orient
        return True
    return orientation in (1, None)


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


# --- modes --------------------------------------------------------------------------------------


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


# --- writing pixels -------------------------------------------------------------------------------


def _start_batch(
    data: bytes, count: int, max_pixels: int, fit: str, label: str,
    prepared: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    first = _open_header(data, max_pixels, label)
    images, masks = _batch_of(count, *first.size, prepared)
    if not _streamed(first, data, images[0], label):
        _load(first, data, label)
        _orient(first)
        if first.size != (images.shape[2], images.shape[1]):  # the batch takes the first image's size as shown
            images, masks = _batch_of(count, *first.size, prepared)
        _fill(_to_canonical_mode(first, label), images[0], masks[0], fit, label)
    return images, masks


def _decode_rest(
    items: list[bytes], images: torch.Tensor, masks: torch.Tensor, max_pixels: int, fit: str, labels: list[str]
) -> None:
    """Decode ``items[1:]`` into their slots, several at a time; the first failure in batch order is raised."""
    rest = range(1, len(items))
    workers = min(BATCH_WORKERS, len(rest))
    if workers <= 1:
        for i in rest:
            _decode_slot(items[i], images[i], masks[i], max_pixels, fit, labels[i])
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="3dlabs-batch") as pool:
        futures = [pool.submit(_decode_slot, items[i], images[i], masks[i], max_pixels, fit, labels[i]) for i in rest]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise  # leaving the block first waits for the decodes already running


def _decode_slot(
    data: bytes, out: torch.Tensor, mask_out: torch.Tensor | None, max_pixels: int, fit: str, label: str
) -> torch.Tensor | None:
    # A function of its own so that each Pillow image dies before the next one is decoded.
    im = _open_header(data, max_pixels, label)
    if _streamed(im, data, out, label):
        return None  # RGB without alpha, exactly the slot's size: the zeroed mask slot stays as it is
    _load(im, data, label)
    _orient(im)
    return _fill(_to_canonical_mode(im, label), out, mask_out, fit, label)


def _fill(
    im: Image.Image, out: torch.Tensor, mask_out: torch.Tensor | None, fit: str, label: str
) -> torch.Tensor | None:
    """Write canonical-mode ``im`` into ``out`` (fitting its size) and return its mask, or None.

    With ``mask_out`` (a zeroed [H,W] slot) the mask is written there; it is returned only when
    something was written to it.
    """
    out_h, out_w = out.shape[0], out.shape[1]
    im, (x0, y0, x1, y1) = _fit(im, out_w, out_h, fit, label)
    padded = (x1 - x0, y1 - y0) != (out_w, out_h)
    dst = out.numpy()
    if padded:
        dst.fill(0.0)
    alpha = image_rows.write_rgb(im, dst[y0:y1, x0:x1])
    if alpha is None and not padded:
        return None
    mask = mask_out if mask_out is not None else _empty_f32((out_h, out_w))
    mask_np = mask.numpy()
    if padded:
        mask_np.fill(1.0)
    region = mask_np[y0:y1, x0:x1]
    if alpha is None:
        region.fill(0.0)
    else:
        np.divide(alpha, _U8_MAX, out=region, dtype=np.float32)
        np.subtract(np.float32(1.0), region, out=region)
    return mask


def _fit(
    im: Image.Image, out_w: int, out_h: int, fit: str, label: str
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Bring ``im`` to the output size by ``fit``; return it and the box of the output it fills."""
    width, height = im.size
    full = (0, 0, out_w, out_h)
    if (width, height) == (out_w, out_h):
        return im, full
    if fit == "error":
        raise ValidationError(
            f"{label} is {width}x{height} but the batch is {out_w}x{out_h} (the size of the first image); "
            "choose fit 'resize', 'pad' or 'crop' to combine images of different sizes"
        )
    if fit == "resize":
        return im.resize((out_w, out_h), _RESAMPLE), full
    if fit == "crop":
        scale = max(out_w / width, out_h / height)
        box_w, box_h = out_w / scale, out_h / scale
        left, top = (width - box_w) / 2, (height - box_h) / 2
        return im.resize((out_w, out_h), _RESAMPLE, box=(left, top, left + box_w, top + box_h)), full
    scale = min(out_w / width, out_h / height)
    new_w = min(out_w, max(1, round(width * scale)))
    new_h = min(out_h, max(1, round(height * scale)))
    if (new_w, new_h) != (width, height):
        im = im.resize((new_w, new_h), _RESAMPLE)
    x0, y0 = (out_w - new_w) // 2, (out_h - new_h) // 2
    return im, (x0, y0, x0 + new_w, y0 + new_h)


# --- small helpers ----------------------------------------------------------------------------------


def _batch_of(
    count: int, width: int, height: int, prepared: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if prepared is not None and tuple(prepared[0].shape) == (count, height, width, 3):
        return prepared
    return _empty_batch(count, width, height)


def _empty_batch(count: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Uninitialised IMAGE [count,H,W,3] and zeroed MASK [count,H,W] (slots without alpha keep the zeros)."""
    return (_empty_f32((count, height, width, 3)),
            torch.from_numpy(np.zeros((count, height, width), dtype=np.float32)))


def _empty_f32(shape: tuple[int, ...]) -> torch.Tensor:
    # Where an output lives decides much of the conversion's cost, because first writes fault pages in.
    # Buffers above glibc's largest mmap threshold (32 MiB: a 2048x2048 IMAGE, any real batch) always
    # come fresh from the kernel; numpy asks for transparent huge pages there and torch's allocator does
    # not, which makes the first write 3x faster. Smaller buffers are usually recycled by malloc,
    # already faulted in, where numpy's madvise only gets in the way. Both share memory with the tensor.
    if 4 * int(np.prod(shape)) > _FRESH_FROM_KERNEL_BYTES:
        return torch.from_numpy(np.empty(shape, dtype=np.float32))
    return torch.empty(shape, dtype=torch.float32)


def _check_fit(fit: str) -> None:
    if fit not in FIT_POLICIES:
        raise ValidationError(f"fit must be one of {', '.join(FIT_POLICIES)}, not {fit!r}")


def _check_out(out: torch.Tensor) -> None:
    if out.dtype != torch.float32 or out.device.type != "cpu" or out.ndim != 3 or out.shape[-1] != 3:
        raise ValueError(
            f"out must be a CPU float32 tensor of shape [H,W,3], got {out.dtype} {list(out.shape)} "
            f"on {out.device}"
        )


def _check_dims(width: int, height: int, count: int) -> None:
    if width < 1 or height < 1 or count < 1:
        raise ValidationError(f"images need a positive size and count, not {width}x{height} x{count}")


def _batch_label(index: int, source: str) -> str:
    return f"image at batch index {index}" + (f" ({source})" if source else "")


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
