"""ComfyUI's video types, when ComfyUI is there: the VideoInput base class and VideoComponents.

The pack's VIDEO value must be a ``VideoInput`` for ComfyUI's own nodes (SaveVideo, GetVideoComponents)
to accept it, yet the pack and its tests must import where ComfyUI is absent. So this adapter looks
ComfyUI's types up once, by name, and falls back to plain stand-ins. It is the only module besides
``comfy.py`` that reaches into ComfyUI, and it never imports ComfyUI's core (``comfy``): ``comfy_api`` is
loaded by ComfyUI before any custom node, so the look-up costs nothing there.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

AUTO = "auto"  # ComfyUI's VideoContainer.AUTO and VideoCodec.AUTO are str enums equal to this


def _comfy_api(name: str, attribute: str):
    try:
        return getattr(importlib.import_module(name), attribute)
    except Exception:  # noqa: BLE001  absent, or an older/broken ComfyUI: the stand-in does the job
        return None


@dataclass
class _StandInVideoComponents:
    images: Any
    frame_rate: Fraction
    audio: Any = None
    metadata: dict | None = None


# Resolved at import: a base class cannot be chosen later. Outside ComfyUI the import fails fast.
VideoInputBase: type = _comfy_api("comfy_api.input", "VideoInput") or object
VideoComponents = _comfy_api("comfy_api.util", "VideoComponents") or _StandInVideoComponents
