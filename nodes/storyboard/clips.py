"""Clips instead of stills: a scene given a clip (an IMAGE batch, e.g. from a local image-to-video model)
plays it, held on its last frame, looped, or with the scene retimed to the clip.

The clips are read where they are: each frame the video shows is fitted to the frame size when it is
rendered, straight into the frame; only a held clip's last frame is kept, while its scene plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import torch

from .framing import fit_picture
from .timeline_plan import TimelinePlan, invalid

MODES = ("hold last frame", "loop", "retime scene to clip")


def clip_inputs() -> dict:
    return {
        "clips": ("IMAGE", {"tooltip": (
            "A clip per scene instead of its still: a list of IMAGE batches, one per scene in scene order (e.g. "
            "an image-to-video model run over the scene images); a scene without one shows its still.")}),
        "clip_mode": (list(MODES), {"default": MODES[0], "tooltip": (
            "When a clip is shorter than its scene: hold its last frame, or loop it; or retime the scene to "
            "last as long as the clip at this fps.")}),
    }


def scene_clips(clips, scene_count: int, labels: Sequence, scene_plan=None) -> dict[int, torch.Tensor]:
    """The clip of each storyboard scene that has one (scene index -> [n, H, W, C]), from the clips input."""
    if clips is None:
        return {}
    items = clips if isinstance(clips, list) else [clips]
    if all(item is None for item in items):
        return {}
    for item in items:
        if item is not None and not (isinstance(item, torch.Tensor) and item.ndim == 4 and item.shape[0] > 0
                                     and item.shape[-1] in (1, 3, 4)):
            shape = list(item.shape) if isinstance(item, torch.Tensor) else type(item).__name__
            raise invalid(f"each clip must be an IMAGE batch [frames, H, W, 3], not {shape}")
    if len(items) != scene_count:
        scenes = getattr(scene_plan, "scenes", None) or []
        if len(items) != len(scenes):
            raise invalid(f"there are {len(items)} clips for the {scene_count} scenes of the storyboard",
                          hint="Give one clip (IMAGE batch) per scene, in scene order, as a list.")
        by_number = {s.number: c for s, c in zip(scenes, items)}
        items = [by_number.get(label) for label in labels]
    return {index: clip for index, clip in enumerate(items) if clip is not None}


def retimed_durations(durations: Sequence[float], clips: dict[int, torch.Tensor], fps: float, mode: str
                      ) -> list[float]:
    """With "retime scene to clip", a scene with a clip lasts its frames at ``fps``."""
    if mode not in MODES:
        raise invalid(f"the clip_mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != MODES[2]:
        return list(durations)
    rate = Fraction(repr(float(fps)))
    return [float(Fraction(int(clips[i].shape[0])) / rate) if i in clips else d for i, d in enumerate(durations)]


class ClipFrames:
    """The picture of a clip scene at any frame of the plan, written at the frame's size into the frame."""

    def __init__(self, clips: dict[int, torch.Tensor], plan: TimelinePlan, mode: str, height: int, width: int,
                 fit: str) -> None:
        self.clips, self.plan, self.mode = clips, plan, mode
        self.height, self.width, self.fit = height, width, fit
        # The one fitted frame worth keeping: a held clip's last, shown for the rest of its scene. Only the
        # scene playing keeps one; every other picture goes straight into its frame, so a long clip makes
        # no allocation per frame (freed large blocks stay resident in the C allocator's heap).
        self._held: dict[int, torch.Tensor] = {}

    def __contains__(self, scene: int) -> bool:
        return scene in self.clips

    def clip_index(self, scene: int, frame: int) -> int:
        """Which frame of the scene's clip frame ``frame`` of the plan shows (its fade-in shows the first)."""
        count = int(self.clips[scene].shape[0])
        k = max(0, frame - self.plan.boundaries[scene])
        return k % count if self.mode == MODES[1] else min(k, count - 1)

    def write(self, scene: int, frame: int, target: torch.Tensor) -> torch.Tensor:
        """Frame ``frame`` of the plan as the scene's clip shows it, into ``target`` [H, W, 3] (returned)."""
        index, last = self.clip_index(scene, frame), int(self.clips[scene].shape[0]) - 1
        held = self._held.get(scene)
        if held is not None and index == last:
            return target.copy_(held)
        source = self.clips[scene][index].detach()
        if source.shape[-1] == 4:
            source = source[..., :3]
        elif source.shape[-1] == 1:
            source = source.expand(-1, -1, 3)
        if tuple(source.shape[:2]) != (self.height, self.width):
            source = fit_picture(source.to("cpu", torch.float32), self.height, self.width, self.fit)
        target.copy_(source).nan_to_num_(nan=0.0).clamp_(0.0, 1.0)
        if self.mode == MODES[0] and index == last:
            self._held = {scene: target.clone()}  # workers may race here; each writes a correct picture
        return target
