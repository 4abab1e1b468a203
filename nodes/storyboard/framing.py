"""The frame's size and how a picture of another shape fills it: size presets (vertical 1080x1920 for
phones, the Flux sizes), and stretch, crop or a blurred fill.

A picture is fitted once per scene, when the renderer loads it, so the choice costs nothing per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .timeline_plan import invalid, output_size

SIZES = ("custom", "1920x1080", "1080x1920", "1344x768", "768x1344", "1080x1080")
FITS = ("auto", "crop", "blurred fill", "stretch")
FILL_DARKEN = 0.55  # the blurred fill behind a fitted picture, darker so the picture stands out
FILL_BLUR_SCALE = 24  # the fill is this many times smaller before it is scaled up again: a wide, cheap blur


def framing_inputs() -> dict:
    """The optional size inputs, appended after those saved workflows know (their frames do not change)."""
    return {
        "size": (list(SIZES), {"default": "custom", "tooltip": (
            "The video's size: custom uses width and height; 1080x1920 and 768x1344 are vertical (phones), "
            "1080x1080 square.")}),
        "fit": (list(FITS), {"default": "auto", "tooltip": (
            "How a picture of another shape fills the frame. crop: its middle, filling the frame. blurred fill: "
            "all of it, over a blurred, darker copy of itself. stretch: all of it, distorted. auto: crop with "
            "a size preset, stretch with a custom size (as before these inputs existed).")}),
    }


def preset_size(size: str | None) -> tuple[int, int] | None:
    """(height, width) of a size preset, None for custom."""
    if size in (None, "", "custom"):
        return None
    if size not in SIZES:
        raise invalid(f"the size must be one of {', '.join(SIZES)}, not {size!r}")
    width, height = (int(v) for v in size.split("x"))
    return height, width


def frame_size(source_height: int, source_width: int, width: int, height: int, size: str | None
               ) -> tuple[int, int]:
    """(height, width) of the frames: the preset's, or width and height as before (0 keeps the source's)."""
    return preset_size(size) or output_size(source_height, source_width, width, height)


def fit_mode(fit: str | None, size: str | None) -> str:
    fit = fit or "auto"
    if fit not in FITS:
        raise invalid(f"the fit must be one of {', '.join(FITS)}, not {fit!r}")
    if fit == "auto":
        return "stretch" if preset_size(size) is None else "crop"
    return fit


def _resize(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[3, h, w] to [3, height, width], antialiased when shrinking."""
    if tuple(picture.shape[1:]) == (height, width):
        return picture
    shrinking = height < picture.shape[1] or width < picture.shape[2]
    return F.interpolate(picture.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False,
                         antialias=shrinking)[0]


def _cover_crop(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The middle of [3, h, w] with the aspect of height x width."""
    h, w = int(picture.shape[1]), int(picture.shape[2])
    if w * height > h * width:  # wider than the frame: keep the full height
        keep = max(1, round(h * width / height))
        return picture[:, :, (w - keep) // 2:(w - keep) // 2 + keep]
    keep = max(1, round(w * height / width))
    return picture[:, (h - keep) // 2:(h - keep) // 2 + keep, :]


def fit_picture(picture: torch.Tensor, height: int, width: int, mode: str = "stretch") -> torch.Tensor:
    """A picture [H, W, 3] (0..1) as [height, width, 3], filled by ``mode`` (stretch, crop, blurred fill)."""
    chw = picture.permute(2, 0, 1)
    if mode == "crop":
        out = _resize(_cover_crop(chw, height, width), height, width)
    elif mode == "blurred fill":
        h, w = int(chw.shape[1]), int(chw.shape[2])
        scale = min(height / h, width / w)
        inner_h, inner_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
        small = _resize(_cover_crop(chw, height, width), max(1, height // FILL_BLUR_SCALE),
                        max(1, width // FILL_BLUR_SCALE))
        out = F.interpolate(small.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False)[0]
        out = out.mul_(FILL_DARKEN)
        top, left = (height - inner_h) // 2, (width - inner_w) // 2
        out[:, top:top + inner_h, left:left + inner_w] = _resize(chw, inner_h, inner_w)
    else:
        out = _resize(chw, height, width)
    return out.permute(1, 2, 0)
