"""The storyboard nodes' inputs: their spec (the timeline's, then the extras, then the captions'), and how a
run reads them when ComfyUI hands every input over as a list (INPUT_IS_LIST, so that a list of texts or sounds,
one per scene, arrives whole instead of running the node once per item)."""

from __future__ import annotations

import torch

from ..types import scalar_input
from .caption_inputs import caption_inputs
from .clips import clip_inputs
from .framing import framing_inputs
from .sound_inputs import sound_inputs
from .timeline import timeline_inputs
from .timeline_plan import invalid

LIST_INPUTS = ("caption_texts", "narration", "clips")


def storyboard_inputs(extra: dict | None = None, video: bool = False) -> dict:
    """The Storyboard Timeline's inputs with ``extra`` optional ones, then the captions' (appended in this
    order, so the widgets of a workflow saved before them keep their places)."""
    spec = timeline_inputs()
    spec["optional"].update(extra or {})
    spec["optional"].update(framing_inputs())
    spec["optional"].update(sound_inputs())
    spec["optional"].update(clip_inputs())
    spec["optional"].update(caption_inputs(video))
    return spec


def _images(value):
    """IMAGE batches from a list (several scenes' images, one batch each) as one batch."""
    if not isinstance(value, list):
        return value
    batches = [v for v in value if v is not None]
    if len(batches) <= 1:
        return batches[0] if batches else None
    if not all(isinstance(b, torch.Tensor) and b.ndim in (3, 4) for b in batches):
        raise invalid("images must be IMAGE batches [B,H,W,3]")
    batches = [b if b.ndim == 4 else b.unsqueeze(0) for b in batches]
    sizes = sorted({f"{b.shape[2]}x{b.shape[1]}" for b in batches})
    if len(sizes) > 1 or len({b.shape[-1] for b in batches}) > 1:
        raise invalid(f"the images arrived as a list of batches of different sizes ({', '.join(sizes)})",
                      hint="Resize them to one size first (e.g. ImageScale), or connect one batch.")
    return torch.cat(batches)


def read_inputs(inputs: dict) -> dict:
    """A run's inputs as single values (lists stay lists where they are one item per scene)."""
    return {name: _images(value) if name == "images" else value if name in LIST_INPUTS
            else scalar_input(value) for name, value in inputs.items()}
