"""Scene images as PNG bytes: a seeded backdrop, the prompt, the scene number and a SANDBOX mark.

Also the two broken PNGs of the image faults (truncated bytes, decompression bomb). Pillow is
imported inside ``render_png`` only, so importing the sandbox stays cheap.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import random
import struct
import textwrap
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

ASPECT_SIZES = {"16:9": (1344, 768), "9:16": (768, 1344), "1:1": (1024, 1024), "4:3": (1152, 896)}
BOMB_SIDE = 20000
_DETAIL_SCALE = 4  # the backdrop is drawn at 1/4 size and scaled up: smooth shapes, fast to render


def render_png(prompt: str, model: str, scene_number: int | None, width: int, height: int) -> bytes:
    """A deterministic picture for (prompt, model, scene number) at ``width`` x ``height``."""
    import io

    from PIL import Image, ImageDraw

    seed = hashlib.sha256(f"{prompt}\x00{model}\x00{scene_number}".encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))
    small = _backdrop(rng, max(32, width // _DETAIL_SCALE), max(32, height // _DETAIL_SCALE))
    picture = small.resize((width, height), Image.Resampling.BILINEAR).convert("RGBA")

    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    unit = min(width, height)
    _draw_prompt(draw, prompt, width, height, unit)
    _draw_badge(draw, "SANDBOX", (round(unit * 0.03), round(unit * 0.03)), round(unit * 0.07),
                fill=(255, 214, 0, 235), ink=(20, 20, 20, 255))
    if scene_number is not None:
        label = f"Scene {scene_number}"
        size = round(unit * 0.05)
        text_width = _text_width(draw, label, size)
        _draw_badge(draw, label, (width - text_width - round(unit * 0.03 + size * 0.9), round(unit * 0.035)),
                    size, fill=(15, 15, 25, 200), ink=(255, 255, 255, 255))
    picture = Image.alpha_composite(picture, overlay).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _backdrop(rng: random.Random, width: int, height: int):
    from PIL import Image, ImageDraw, ImageFilter, ImageOps

    hue = rng.random()
    sky_top = _colour(hue, 0.55, 0.35)
    sky_low = _colour((hue + 0.08) % 1.0, 0.45, 0.85)
    gradient = Image.linear_gradient("L").resize((width, height))
    image = ImageOps.colorize(gradient, sky_top, sky_low).convert("RGBA")
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    sun_r = rng.uniform(0.06, 0.12) * min(width, height) * 2
    sun_x, sun_y = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.45) * height
    draw.ellipse((sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r),
                 fill=_colour((hue + 0.5) % 1.0, 0.35, 0.95) + (200,))
    for layer_index in range(3):  # three ridges, each nearer, darker and lower
        base = height * (0.55 + 0.13 * layer_index)
        points = [(0, height)]
        steps = 8
        for step in range(steps + 1):
            points.append((width * step / steps, base - rng.uniform(0.0, 0.18) * height))
        points.append((width, height))
        shade = _colour((hue + 0.6 + 0.05 * layer_index) % 1.0, 0.4, 0.45 - 0.12 * layer_index)
        draw.polygon(points, fill=shade + (255,))
    # A slight blur at low resolution hides the stair steps the 4x upscale would otherwise show.
    return Image.alpha_composite(image, layer).convert("RGB").filter(ImageFilter.GaussianBlur(0.6))


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, max(0.0, min(1.0, value)))
    return round(red * 255), round(green * 255), round(blue * 255)


@functools.lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, AttributeError):  # Pillow < 10.1 or no FreeType: small bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, size: int) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=_font(size))
    return int(right - left)


def _draw_badge(draw, text: str, origin: tuple[int, int], size: int, fill, ink) -> None:
    font = _font(size)
    left, top, right, bottom = draw.textbbox(origin, text, font=font)
    pad = max(4, size // 3)
    draw.rounded_rectangle((left - pad, top - pad, right + pad, bottom + pad), radius=pad, fill=fill)
    draw.text(origin, text, font=font, fill=ink)


def _draw_prompt(draw, prompt: str, width: int, height: int, unit: int) -> None:
    size = max(12, round(unit * 0.036))
    font = _font(size)
    columns = max(16, int(width * 0.86 / (size * 0.55)))
    wrapped = textwrap.wrap(" ".join(prompt.split()), columns)
    lines = wrapped[:4] or [""]
    if len(wrapped) > 4:
        lines[-1] = lines[-1][: max(0, columns - 3)] + "..."
    line_height = round(size * 1.3)
    margin = round(unit * 0.04)
    top = height - margin - line_height * len(lines)
    draw.rectangle((0, top - margin // 2, width, height), fill=(0, 0, 0, 150))
    for index, line in enumerate(lines):
        draw.text((margin, top + index * line_height), line, font=font, fill=(255, 255, 255, 255))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _build_bomb() -> bytes:
    """A valid 1-bit grey PNG claiming 20000 x 20000 pixels: ~50 MB of zero rows, ~50 kB compressed."""
    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + BOMB_SIDE // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    block = row * 400
    parts = [packer.compress(block) for _ in range(BOMB_SIDE // 400)]
    parts.append(packer.flush())
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


_bomb_lock = threading.Lock()
_bomb: bytes | None = None


def bomb_png() -> bytes:
    """The decompression bomb, built once per process (its zlib stream takes a moment to compress)."""
    global _bomb
    with _bomb_lock:
        if _bomb is None:
            _bomb = _build_bomb()
        return _bomb


def truncated(png: bytes) -> bytes:
    """The first half of a PNG: the signature and header survive, the pixel data does not."""
    return png[: max(16, len(png) // 2)]


class PngCache:
    """A small LRU of rendered PNGs by name, so repeated downloads do not redraw."""

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-render")

    def prefetch(self, name: str, render: Callable[[], bytes]) -> None:
        """Render in the background while the job 'runs', as a real service has the file ready when
        the job completes; otherwise the first download would pay for the drawing."""
        with self._lock:
            if name in self._items or name in self._pending:
                return
            self._pending.add(name)

        def work() -> None:
            try:
                self.get_or_render(name, render)
            finally:
                with self._lock:
                    self._pending.discard(name)

        try:
            self._renderer.submit(work)
        except RuntimeError:  # shut down: the download will render on demand
            with self._lock:
                self._pending.discard(name)

    def get_or_render(self, name: str, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            if name in self._items:
                self._items.move_to_end(name)
                return self._items[name]
        data = render()  # outside the lock: a slow render must not block other downloads
        with self._lock:
            self._items[name] = data
            self._items.move_to_end(name)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return data

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def close(self) -> None:
        self._renderer.shutdown(wait=False, cancel_futures=True)
