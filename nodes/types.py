"""Names of the pack's ComfyUI socket types, the choices its inputs offer (a public contract), the base of
its node classes, and how a node reads a scalar input when ComfyUI hands it every input as a list."""

from __future__ import annotations

# The inputs offer the choices the client validates against.
from .api.validation import ASPECT_RATIOS, IMAGE_PROVIDERS, STORY_PROVIDERS  # noqa: F401

CATEGORY = "3DLabs"
STORY = "3DLABS_STORY"
SCENE_PLAN = "3DLABS_SCENE_PLAN"

# Output image sizes per aspect ratio (Flux's native sizes), used for placeholders in dry runs.
ASPECT_SIZES = {"16:9": (1344, 768), "9:16": (768, 1344), "1:1": (1024, 1024), "4:3": (1152, 896)}

SEED = ("INT", {
    "default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
    "tooltip": "Not sent to 3DLabs. The same inputs never submit a new (paid) job; change the seed for a "
               "new take.",
})


def max_minutes_input(tooltip: str) -> tuple:
    return ("INT", {"default": 1, "min": 1, "max": 5, "step": 1, "tooltip": tooltip})


def choices(values: tuple[str, ...], tooltip: str) -> tuple:
    return (list(values), {"default": values[0], "tooltip": tooltip})


def scalar_input(value, default=None):
    """INPUT_IS_LIST hands every input over as a list; a scalar input is its first item."""
    if isinstance(value, list):
        return value[0] if value else default
    return value if value is not None else default


class Node:
    """What every 3DLabs node class shares: its menu category, and ``run`` as its FUNCTION."""

    CATEGORY = CATEGORY
    FUNCTION = "run"
