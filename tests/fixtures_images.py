"""Builders of real image bytes for the image tests: encoded with Pillow, or crafted where Pillow won't."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(im: Image.Image, fmt: str = "PNG", **params) -> bytes:
    """Encode ``im`` in ``fmt`` and return the file's bytes."""
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def solid(color, size=(8, 4), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def png(color=(200, 30, 30), size=(8, 4), mode: str = "RGB", fmt: str = "PNG", **params) -> bytes:
    """A picture of one colour, as the bytes of a PNG file (or of ``fmt``'s)."""
    return encode(solid(color, size, mode), fmt, **params)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG file's bytes, from its header."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    return struct.unpack(">II", data[16:24])


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` RGB but whose pixel data is empty.

    Stands in for a decompression bomb: it costs nothing to build, and any attempt to decode it fails,
    so a "too large" error proves the size was refused from the header alone.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def quadrants(size=(40, 20)) -> Image.Image:
    """RGB image in four solid quadrants: red top-left, green top-right, blue bottom-left, white
    bottom-right (big flat areas survive JPEG)."""
    width, height = size
    im = Image.new("RGB", size)
    im.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    im.paste((0, 255, 0), (width // 2, 0, width, height // 2))
    im.paste((0, 0, 255), (0, height // 2, width // 2, height))
    im.paste((255, 255, 255), (width // 2, height // 2, width, height))
    return im


def jpeg_with_orientation(im: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(colors, size=(6, 4)) -> bytes:
    frames = [Image.new("RGB", size, c) for c in colors]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def photo(size=(1024, 768), seed: int = 0) -> Image.Image:
    """An RGB picture with gradients and grain: large, and busy enough that every codec has work."""
    import numpy as np

    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height) + 64], -1)
    grain = np.random.default_rng(seed).integers(-12, 12, base.shape)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB")


def png_with_exif_after_pixels(im: Image.Image, orientation: int) -> bytes:
    """A PNG whose eXIf chunk (with ``orientation``) comes after its IDAT chunks, as PNG allows."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    payload = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
    data = encode(im, "PNG")
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + _png_chunk(b"eXIf", payload) + data[iend:]


def large_png(width: int, height: int) -> bytes:
    """A black RGB PNG of ``width`` x ``height`` that is small on the wire (8000x8000: about 190 KB, 1 GB as
    an IMAGE), compressed a row at a time so that building it never holds the pixels."""
    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then the row's pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def ico_around(image: bytes, side: int = 16) -> bytes:
    """An ICO whose directory says ``side`` x ``side`` and whose one image is ``image``, whatever its size."""
    directory = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(image), 22)
    return directory + image
