"""3DLabs Storyboard Timeline: scene images become video frames timed by the scene plan, rendered with torch.

ComfyUI's CreateVideo makes one frame of each image in a batch, so four scene images would last a
fraction of a second. This module owns the renderer of any range of a ``TimelinePlan``'s
frames: pictures resized to 0..1, Ken Burns views sampled with ``grid_sample`` (bilinear, border), and
crossfades. Each frame is computed on its own, so any split into chunks gives the same frames, bit for
bit, as the whole batch. The plan comes from ``timeline_plan``, whose names are re-exported here; the node
is ``timeline_node``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import groupby

import numpy as np
import torch
import torch.nn.functional as F

from ..types import SCENE_PLAN
from .framing import fit_picture
from .timeline_plan import (
    DEFAULT_MAX_BYTES,
    KEN_BURNS_ZOOM,
    MAX_BYTES_ENV,
    MOTIONS,
    TRANSITIONS,
    Frame,
    TimelinePlan,
    View,
    check_choices,
    check_memory,
    crossfade_lengths,
    estimate_bytes,
    frame_counts,
    invalid,
    max_bytes_setting,
    motion_window,
    output_size,
    plan_durations,
    plan_timeline,
    scenes_left_out,
)

__all__ = [
    "DEFAULT_MAX_BYTES", "KEN_BURNS_ZOOM", "MAX_BYTES_ENV", "MOTIONS", "TRANSITIONS",
    "TimelinePlan", "TimelineRenderer", "crossfade_lengths", "estimate_bytes", "frame_counts", "max_bytes_setting",
    "motion_window", "output_size", "plan_durations", "plan_timeline", "render_timeline", "scene_durations",
    "timeline_inputs",
]

ProgressCallback = Callable[[int, int], None]

# Moving frames are sampled one per task by a small pool of threads (grid_sample runs one image on
# one thread and releases the GIL): on a busy CPU this beat batched calls spread over torch's own
# threads, which wait on each other at every op. Each op holds the GIL briefly: beyond about 8
# threads they queue on it. Progress (and Cancel) is checked after each step of a few frames.
_MAX_WORKERS = 8
_MOVING_STEP_PER_WORKER = 2
_STILL_STEP = 24  # still frames are plain copies: larger steps write fresh memory faster


def _as_batch(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise invalid(f"images must be an IMAGE batch (a tensor), not {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[1] < 1 or images.shape[2] < 1:
        raise invalid(f"images must be an IMAGE batch [B,H,W,3] with at least one image, "
                      f"not shape {list(images.shape)}")
    if images.shape[-1] not in (1, 3, 4):
        raise invalid(f"images must have 3 colour channels, not {images.shape[-1]}")
    return images


def _axis(size: int, scale: float, centre: float) -> torch.Tensor:
    """Sampling positions of ``size`` output pixels along one axis, in grid_sample's -1..1 units."""
    # float64 first: the positions are then exact to float32, whatever the scale.
    u = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    return (u / scale + centre).to(torch.float32)


class TimelineRenderer:
    """Frames of ``plan`` from ``images`` (one per scene) at height x width, any range at a time.

    Working memory beyond the frames asked for is the pictures of the scenes one step of a few frames
    shows (two, unless scenes are shorter than a step) and the step's grid_sample views.
    """

    def __init__(self, images, plan: TimelinePlan, height: int, width: int, overlay=None,
                 fit: str = "stretch", clips=None) -> None:
        self.images = _as_batch(images)
        self.overlay = overlay  # burned-in captions (caption_render.CaptionOverlay), laid over each step
        self.fit = fit  # how a picture of another shape fills the frame (framing.FITS)
        self.clips = clips or ()  # clips.ClipFrames: the scenes that play a clip instead of their still
        if int(self.images.shape[0]) != len(plan.counts):
            raise invalid(f"there are {self.images.shape[0]} images but {len(plan.counts)} scenes in the plan; "
                          "give one image per scene")
        self.plan, self.height, self.width = plan, int(height), int(width)
        self.moving = plan.motion != "none"
        self.source_size = (self.height, self.width)
        if self.moving and fit != "stretch":  # the frame's own shape, so that views of it are not distorted
            self.source_size = (math.ceil(self.height * KEN_BURNS_ZOOM), math.ceil(self.width * KEN_BURNS_ZOOM))
        elif self.moving:
            # Up to 1.15x the output's detail for zooms and pans (so the closest view is not an upscale of
            # a downscale), never more: bilinear sampling aliases above a 1.15x reduction.
            self.source_size = (min(int(self.images.shape[1]), math.ceil(self.height * KEN_BURNS_ZOOM)),
                                min(int(self.images.shape[2]), math.ceil(self.width * KEN_BURNS_ZOOM)))
        self._pictures: dict[int, torch.Tensor] = {}
        self.workers = max(1, min(torch.get_num_threads(), os.cpu_count() or 1, _MAX_WORKERS)) if self.moving else 1
        self.step = self.workers * _MOVING_STEP_PER_WORKER if self.moving else _STILL_STEP

    def _load_pictures(self, lowest: int, highest: int) -> None:
        """Pictures of scenes lowest..highest in 0..1: [H,W,3] when still, [1,3,h,w] for grid_sample when moving.

        Those of other scenes are dropped, which keeps memory constant however the chunks come. Pictures
        are made here, so the moving frames' workers only read them.
        """
        for scene in [s for s in self._pictures if not lowest <= s <= highest]:
            del self._pictures[scene]
        for scene in set(range(lowest, highest + 1)) - self._pictures.keys():
            picture = self.images[scene].detach().to("cpu", torch.float32)
            if picture.shape[-1] == 4:  # an RGBA batch from another pack: alpha has no place in video frames
                picture = picture[..., :3]
            elif picture.shape[-1] == 1:
                picture = picture.expand(-1, -1, 3)
            height, width = self.source_size
            if self.fit != "stretch":
                picture = fit_picture(picture, height, width, self.fit)
            elif tuple(picture.shape[:2]) != (height, width):
                shrinking = height < picture.shape[0] or width < picture.shape[1]
                picture = F.interpolate(picture.permute(2, 0, 1).unsqueeze(0), size=(height, width), mode="bilinear",
                                        align_corners=False, antialias=shrinking)[0].permute(1, 2, 0)
            # Out of place first: the picture may still be a view of the caller's batch, which stays untouched.
            picture = torch.nan_to_num(picture, nan=0.0).clamp_(0.0, 1.0)
            self._pictures[scene] = (picture.permute(2, 0, 1).unsqueeze(0) if self.moving else picture).contiguous()

    def render(self, start: int = 0, stop: int | None = None, out: torch.Tensor | None = None,
               on_progress: ProgressCallback | None = None) -> torch.Tensor:
        """Frames [start, stop) as float32 [stop - start, H, W, 3], written into ``out`` when given.

        ``on_progress(done, count)`` follows every few frames; it may raise to stop (ComfyUI's Cancel).
        """
        frames = self.plan.frames(start, stop)
        count = len(frames)
        if out is None:
            # numpy asks the kernel for transparent huge pages on large buffers and torch's allocator does
            # not; first writes into fresh memory then fault faster, which dominates the "none" motion.
            out = torch.from_numpy(np.empty((count, self.height, self.width, 3), dtype=np.float32))
        elif tuple(out.shape) != (count, self.height, self.width, 3):
            raise ValueError(f"out has shape {list(out.shape)}, not {[count, self.height, self.width, 3]}")
        with ThreadPoolExecutor(self.workers, thread_name_prefix="3dlabs-timeline") as pool:
            for lo in range(0, count, self.step):
                batch, targets = frames[lo:lo + self.step], out[lo:lo + self.step]
                highest = max(frame.base.scene if frame.over is None else frame.over.scene for frame in batch)
                self._load_pictures(batch[0].base.scene, highest)
                if self.moving:
                    # ComfyUI runs nodes under torch.inference_mode(), which is per thread: the workers must
                    # write into frames made there in the same mode, or torch refuses the in-place update.
                    # An error is raised here, and the frames not yet started are cancelled.
                    list(pool.map(partial(self._moving_frame, torch.is_inference_mode_enabled()), batch, targets))
                else:
                    self._render_still(batch, targets)
                if self.overlay is not None:
                    self.overlay.apply(targets, batch[0].index)
                if on_progress is not None:
                    on_progress(min(count, lo + self.step), count)
        return out

    def _render_still(self, batch: Sequence[Frame], targets: torch.Tensor) -> None:
        # Runs of one scene are copied at once: first writes into fresh memory go several times faster in
        # one large op than frame by frame. Copies are exact; crossfade mixes are made one frame at a time.
        lo = 0
        for key, run in groupby(batch, lambda frame: frame.base.scene if frame.over is None else frame):
            hi = lo + len(list(run))
            if isinstance(key, Frame):
                torch.lerp(self._still(key.base, key.index, targets[lo]), self._still(key.over, key.index),
                           key.weight, out=targets[lo])
            elif key in self.clips:
                for offset in range(lo, hi):
                    self.clips.write(key, batch[offset].index, targets[offset])
            else:
                targets[lo:hi].copy_(self._pictures[key].expand(hi - lo, -1, -1, -1))
            lo = hi

    def _still(self, view: View, index: int, target: torch.Tensor | None = None) -> torch.Tensor:
        """The scene's picture at a frame: a still as it is kept, a clip's frame written into ``target``."""
        if view.scene not in self.clips:
            return self._pictures[view.scene]
        target = torch.empty((self.height, self.width, 3)) if target is None else target
        return self.clips.write(view.scene, index, target)

    def _sample(self, view: View) -> torch.Tensor:
        """The view as [H,W,3]: a permuted view of grid_sample's [1,3,H,W] output, not yet clamped."""
        xs = _axis(self.width, view.scale, view.centre)
        ys = _axis(self.height, view.scale, 0.0)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)  # no rotation
        sample = F.grid_sample(self._pictures[view.scene], grid, mode="bilinear", padding_mode="border",
                               align_corners=False)
        return sample[0].permute(1, 2, 0)

    def _moving_frame(self, inference: bool, frame: Frame, target: torch.Tensor) -> None:
        # Bilinear weights can sum to a hair over 1, hence the clamps.
        with torch.inference_mode(inference):
            if frame.base.scene in self.clips:  # a clip moves by itself: no zoom or pan over it
                self.clips.write(frame.base.scene, frame.index, target)
            else:
                torch.clamp(self._sample(frame.base), 0.0, 1.0, out=target)
            if frame.over is not None:
                over = (self.clips.write(frame.over.scene, frame.index, torch.empty_like(target))
                        if frame.over.scene in self.clips else self._sample(frame.over).clamp_(0.0, 1.0))
                target.lerp_(over, frame.weight)


def render_timeline(images: torch.Tensor, durations: Sequence[float], fps: float, motion: str = "none",
                    transition: str = "cut", crossfade_seconds: float = 0.5, width: int = 0, height: int = 0,
                    max_bytes: int | None = None, *, labels: Sequence | None = None,
                    on_progress: ProgressCallback | None = None) -> tuple[torch.Tensor, str]:
    """All frames [F,H,W,3] float32 for one image per duration, and the timeline as text.

    ``max_bytes`` None reads the limit from the environment; it is checked before anything is allocated.
    """
    check_choices(motion, transition)
    images = _as_batch(images)
    durations = list(durations)
    if len(durations) != images.shape[0]:
        raise invalid(f"there are {images.shape[0]} images but {len(durations)} durations; "
                      "give one duration per image")
    plan = plan_timeline(durations, fps, motion, transition, crossfade_seconds, labels)
    out_h, out_w = output_size(int(images.shape[1]), int(images.shape[2]), width, height)
    check_memory(plan.total, out_h, out_w, fps, max_bytes_setting() if max_bytes is None else int(max_bytes))
    frames = TimelineRenderer(images, plan, out_h, out_w).render(on_progress=on_progress)
    return frames, plan.text(out_h, out_w)


def scene_durations(images, scene_plan, seconds_per_scene: float) -> tuple[list[float], list, str]:
    """The durations and labels for the images, and a note naming the scenes without a planned duration
    and those left out for lack of an image."""
    count = int(images.shape[0]) if isinstance(images, torch.Tensor) and images.ndim == 4 else 1
    durations, labels, defaulted = plan_durations(scene_plan, count, seconds_per_scene)
    note = (f"\nNo planned duration for scene(s) {', '.join(map(str, defaulted))}: "
            f"{float(seconds_per_scene):g} s each (seconds_per_scene)." if defaulted else "")
    if left_out := scenes_left_out(scene_plan, count):
        note += (f"\nLeft out for lack of an image: scene(s) {', '.join(map(str, left_out))} (the project has "
                 "no image for them yet).")
    return durations, labels, note


def timeline_inputs() -> dict:
    """The Storyboard Timeline's inputs (the Storyboard Video takes the same, and more)."""
    return {
        "required": {
            "images": ("IMAGE", {"tooltip": "One image per scene, in scene order (a batch)."}),
            "fps": ("FLOAT", {"default": 12.0, "min": 1.0, "max": 60.0, "step": 0.5, "tooltip": (
                "Frames per second of the video. Each scene gets duration x fps frames, rounded so the total "
                "matches the plan.")}),
            "motion": (list(MOTIONS), {"default": "none", "tooltip": (
                "A slow Ken Burns move on every scene: zoom in or out by 15%, or pan across (pan left moves "
                "the view leftward, so the picture slides right).")}),
            "transition": (list(TRANSITIONS), {"default": "cut", "tooltip": (
                "cut: scenes follow each other directly. crossfade: blend over crossfade_seconds around each "
                "cut, without changing the total length.")}),
            "crossfade_seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 5.0, "step": 0.05, "tooltip": (
                "Length of each crossfade, centred on the cut; shortened to the shorter neighbouring scene.")}),
            "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip": (
                "Output width in pixels; 0 keeps the images' width (or their aspect, if height is set).")}),
            "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip": (
                "Output height in pixels; 0 keeps the images' height (or their aspect, if width is set).")}),
            "seconds_per_scene": ("FLOAT", {"default": 4.0, "min": 0.1, "max": 600.0, "step": 0.1, "tooltip": (
                "Duration of each scene when no plan is connected, and of scenes or extra images the plan "
                "gives no duration.")}),
        },
        "optional": {
            "scene_plan": (SCENE_PLAN, {"tooltip": (
                "The plan from 3DLabs Scene Plan or Load Project: its scene durations set the timing.")}),
        },
        "hidden": {"unique_id": "UNIQUE_ID"},
    }
