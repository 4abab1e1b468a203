"""Burned-in captions: each cue drawn once with Pillow, then laid over the frames that show it.

A cue becomes a small premultiplied RGBA patch (text, outline, optional box) placed at the bottom,
middle or top of the frame; a frame is changed only inside the patch, so captions cost a few
thousand pixels a frame, not a frame copy. The font is Pillow's default scalable one, or a font file
the user names (for scripts the default font lacks: Chinese, Japanese, Arabic...).
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw, ImageFont

from .captions import Cue, join_text
from .timeline_plan import invalid

POSITIONS = ("bottom", "middle", "top")
BOX_ALPHA = 0.6  # a box behind the text: dark enough to read on snow, light enough to see the scene
MARGIN = 0.06  # of the frame's height, between the text and the top or bottom edge


@dataclass(frozen=True)
class CaptionStyle:
    font_size: int = 0  # 0: a twentieth of the frame's shorter side
    position: str = "bottom"
    color: str = "#FFFFFF"
    outline_color: str = "#000000"
    outline: int = 3
    box: bool = False
    max_width: float = 0.9  # of the frame's width
    font: str = ""  # a .ttf / .otf / .ttc file; "" for Pillow's default

    def checked(self) -> CaptionStyle:
        """The style, or a ValidationError naming the setting that cannot be used (before any frame)."""
        if self.position not in POSITIONS:
            raise invalid(f"the caption_position must be one of {', '.join(POSITIONS)}, not {self.position!r}")
        for name in ("color", "outline_color"):
            try:
                ImageColor.getrgb(getattr(self, name))
            except ValueError:
                raise invalid(f"the caption_{name} {getattr(self, name)!r} is not a colour",
                              hint="Use a name (white) or a hex code (#FFFFFF).") from None
        if self.font and not os.path.isfile(self.font):
            raise invalid(f"the caption font file {self.font!r} does not exist",
                          hint="Name a .ttf, .otf or .ttc file on this machine, or leave caption_font empty.")
        return self

    def load_font(self, frame_height: int, frame_width: int) -> ImageFont.FreeTypeFont:
        size = self.font_size or max(12, min(frame_height, frame_width) // 20)
        if not self.font:
            return ImageFont.load_default(size=size)
        try:
            return ImageFont.truetype(self.font, size=size)
        except OSError as err:
            raise invalid(f"the caption font {self.font!r} cannot be read: {err}",
                          hint="Name a TrueType or OpenType font file.") from None


def _fit_lines(text: str, font, max_px: float) -> list[str]:
    """The cue's lines, each broken again where it is wider than ``max_px`` at this font."""
    out: list[str] = []
    for line in text.split("\n"):
        words = line.split(" ") if " " in line else list(line)
        current = ""
        for word in words:
            candidate = join_text(current, word) if current else word
            if current and font.getlength(candidate) > max_px:
                out.append(current)
                current = word
            else:
                current = candidate
        out.append(current)
    return out


@dataclass(frozen=True)
class Patch:
    top: int
    left: int
    colour: torch.Tensor  # premultiplied RGB [h, w, 3], 0..1
    alpha: torch.Tensor  # [h, w, 1], 0..1


def draw_patch(text: str, style: CaptionStyle, height: int, width: int, font=None) -> Patch:
    """One cue drawn at its place in a ``width`` x ``height`` frame."""
    font = font or style.load_font(height, width)
    lines = _fit_lines(text, font, style.max_width * width - 2 * style.outline)
    size = int(font.size)
    spacing = max(2, size // 5)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.multiline_textbbox((0, 0), "\n".join(lines), font=font, spacing=spacing,
                                                        align="center", stroke_width=style.outline)
    left, top, right, bottom = math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)
    pad = size // 3 if style.box else 0
    w, h = min(width, right - left + 2 * pad), min(height, bottom - top + 2 * pad)
    canvas = Image.new("RGBA", (max(1, w), max(1, h)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    if style.box:
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad, fill=(0, 0, 0, round(255 * BOX_ALPHA)))
    draw.multiline_text((pad - left, pad - top), "\n".join(lines), font=font, fill=style.color, spacing=spacing,
                        align="center", stroke_width=style.outline, stroke_fill=style.outline_color)
    rgba = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)
    alpha = rgba[..., 3:4].contiguous()
    margin = round(MARGIN * height)
    y = {"bottom": height - margin - h, "middle": (height - h) // 2, "top": margin}[style.position]
    return Patch(max(0, y), (width - w) // 2, (rgba[..., :3] * alpha).contiguous(), alpha)


class CaptionOverlay:
    """The cues of a storyboard over its frames: each drawn once, on first use, and kept while it shows."""

    def __init__(self, cues: Sequence[Cue], style: CaptionStyle, height: int, width: int) -> None:
        self.cues = sorted(cues, key=lambda c: c.first)
        self.starts = [c.first for c in self.cues]
        self.style, self.height, self.width = style.checked(), int(height), int(width)
        self._font = style.load_font(self.height, self.width) if self.cues else None
        self._patches: dict[int, Patch] = {}

    def _cue_at(self, frame: int) -> int | None:
        index = bisect.bisect_right(self.starts, frame) - 1
        return index if index >= 0 and frame < self.cues[index].last else None

    def patch(self, index: int) -> Patch:
        found = self._patches.get(index)
        if found is None:
            # Only the cues near the frames being made are kept: a long video holds two or three patches.
            for old in [k for k in list(self._patches) if k < index - 1]:
                self._patches.pop(old, None)
            found = self._patches[index] = draw_patch(self.cues[index].text, self.style, self.height,
                                                      self.width, self._font)
        return found

    def apply(self, frames: torch.Tensor, first: int) -> torch.Tensor:
        """Lays the captions over float frames [n, H, W, 3] that are frames first.. of the storyboard."""
        for offset in range(int(frames.shape[0])):
            index = self._cue_at(first + offset)
            if index is None:
                continue
            p = self.patch(index)
            region = frames[offset, p.top:p.top + p.colour.shape[0], p.left:p.left + p.colour.shape[1]]
            region.mul_(1.0 - p.alpha).add_(p.colour)
        return frames
