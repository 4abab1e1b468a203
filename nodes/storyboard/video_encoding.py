"""What SaveVideo's keywords mean for the Storyboard Video's encoder, checked before a frame is rendered.

ComfyUI's VideoInput.save_to grew keywords over time: ``format``, ``codec`` and ``metadata`` (0.3.64),
``bit_depth``, ``crf`` and ``color_space`` (0.33), ``preset`` (0.38). The storyboard is 8-bit sRGB H.264 in
MP4, so this module turns each into libx264 options where it makes sense for that and refuses it with a
clear reason where it cannot be met (another container or codec, 10-bit, HDR).
"""

from __future__ import annotations

import math

from ..api.errors import ValidationError
from .comfy_video import AUTO


def invalid(detail: str) -> ValidationError:
    return ValidationError(detail, summary="3DLabs Storyboard Video cannot be saved with these settings.",
                           hint="Change the setting on the saving node (SaveVideo); nothing was written.")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
BT709 = 1  # the colour matrix number (ITU-T H.273) of BT.709, as av.video.reformatter names it
SRGB_TAGS = {"color_primaries": 1, "color_trc": 13, "colorspace": 1, "color_range": 1}  # BT.709, sRGB, limited


def tag_srgb(target) -> None:
    """Mark a stream or frame as sRGB (BT.709 primaries and matrix, sRGB transfer), as today's core does."""
    for name, value in SRGB_TAGS.items():
        setattr(target, name, value)


def _name(value) -> str:
    return str(getattr(value, "value", value)).strip().lower()  # SaveVideo's options are str enums, or str


def encoder_options(format, codec, bit_depth, crf, color_space, preset) -> dict:
    """What SaveVideo asked for, checked before anything is rendered: libx264 options and whether to tag sRGB."""
    if _name(format) not in (AUTO, "mp4"):
        raise invalid(f"The Storyboard Video is saved as MP4 only, not as {_name(format)!r}; choose auto or mp4")
    if _name(codec) not in (AUTO, "h264"):
        raise invalid(f"The Storyboard Video is encoded as H.264 only, not {_name(codec)!r}; choose auto or h264")
    if bit_depth not in (None, 8):
        raise invalid(f"The Storyboard Video is 8-bit: its frames are 8-bit scene images, so {bit_depth}-bit "
                      "cannot be written; choose 8")
    space = None if color_space is None or _name(color_space) == AUTO else str(color_space).strip()
    if space is not None and space.lower() != "srgb":
        raise invalid(f"The Storyboard Video is 8-bit sRGB and cannot be saved as {color_space!r} (HDR needs "
                      "10-bit BT.2020 frames); choose sRGB or auto")
    codec_options = {}
    if crf is not None:
        try:
            value = float(crf)
        except (TypeError, ValueError):
            value = math.nan
        if not 0 <= value <= 51:
            raise invalid(f"crf must be a number from 0 (lossless) to 51 for H.264, not {crf!r}")
        codec_options["crf"] = f"{value:g}"
    if preset is not None and _name(preset) not in ("", AUTO):
        if _name(preset) not in X264_PRESETS:
            raise invalid(f"Preset {preset!r} is not an H.264 (x264) preset; choose one of {', '.join(X264_PRESETS)}")
        codec_options["preset"] = _name(preset)
    return {"codec": codec_options, "srgb": space is not None}
