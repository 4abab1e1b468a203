"""The Storyboard Timeline's pixels: any range of a ``TimelinePlan``'s frames, rendered with torch.

This module owns turning planned frames into float32 [F,H,W,3] frames: preparing each scene's picture
(resized, 0..1), sampling the Ken Burns views with ``torch.nn.functional.grid_sample`` (bilinear,
align_corners=False, border padding) and mixing crossfades. ``TimelineRenderer.render(start, stop)``
renders frames [start, stop) of the plan; each frame is computed on its own from its description, so
any split of a timeline into chunks gives the same frames, bit for bit, as the whole batch. A long
video can so be rendered a few frames at a time in constant memory. What to render is decided in
``timeline_plan``; this module knows no HTTP and no ComfyUI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from .timeline_plan import (
    KEN_BURNS_ZOOM,
    Frame,
    TimelinePlan,
    View,
    check_choices,
    check_memory,
    invalid,
    max_bytes_setting,
    output_size,
    plan_timeline,
)

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


def _scene_picture(images: torch.Tensor, index: int, height: int, width: int) -> torch.Tensor:
    """Scene ``index`` as a contiguous float32 [height,width,3] CPU picture in 0..1."""
    picture = images[index].detach().to("cpu", torch.float32)
    channels = picture.shape[-1]
    if channels == 4:  # an RGBA batch from another pack: alpha has no place in video frames
        picture = picture[..., :3]
    elif channels == 1:
        picture = picture.expand(-1, -1, 3)
    if tuple(picture.shape[:2]) != (height, width):
        shrinking = height < picture.shape[0] or width < picture.shape[1]
        picture = F.interpolate(picture.permute(2, 0, 1).unsqueeze(0), size=(height, width), mode="bilinear",
                                align_corners=False, antialias=shrinking)[0].permute(1, 2, 0)
    # Out of place first: the picture may still be a view of the caller's batch, which stays untouched.
    return torch.nan_to_num(picture, nan=0.0).clamp_(0.0, 1.0).contiguous()


def _motion_source_size(images: torch.Tensor, height: int, width: int) -> tuple[int, int]:
    # Keep up to 1.15x the output's detail for zooms and pans (so the closest view is not an upscale
    # of a downscale) while never sampling with a reduction above 1.15x, where bilinear aliases.
    limit_h, limit_w = math.ceil(height * KEN_BURNS_ZOOM), math.ceil(width * KEN_BURNS_ZOOM)
    return min(int(images.shape[1]), limit_h), min(int(images.shape[2]), limit_w)


def _allocate_frames(count: int, height: int, width: int) -> torch.Tensor:
    # numpy asks the kernel for transparent huge pages on large buffers and torch's allocator does not;
    # first writes into fresh memory then fault faster, which dominates the "none" motion.
    return torch.from_numpy(np.empty((count, height, width, 3), dtype=np.float32))


def _axis(size: int, scale: float, centre: float) -> torch.Tensor:
    """Sampling positions of ``size`` output pixels along one axis, in grid_sample's -1..1 units."""
    # float64 first: the positions are then exact to float32, whatever the scale.
    u = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    return (u / scale + centre).to(torch.float32)


def _grid(views: Sequence[View], height: int, width: int) -> torch.Tensor:
    """grid_sample's [N,H,W,2] grid for the views: no rotation, so x varies by column, y by row."""
    n = len(views)
    xs = torch.stack([_axis(width, v.scale, v.centre) for v in views])[:, None, :, None]
    ys = torch.stack([_axis(height, v.scale, 0.0) for v in views])[:, :, None, None]
    return torch.cat([xs.expand(n, height, width, 1), ys.expand(n, height, width, 1)], dim=3)


class TimelineRenderer:
    """Frames of ``plan`` from ``images`` (one per scene) at height x width, any range at a time.

    Frames are made a step of a few at a time; working memory beyond the frames asked for is the
    pictures of the scenes one step shows (two, unless scenes are shorter than a step) and the
    step's grid_sample views.
    """

    def __init__(self, images, plan: TimelinePlan, height: int, width: int) -> None:
        self.images = _as_batch(images)
        if int(self.images.shape[0]) != len(plan.counts):
            raise invalid(f"there are {self.images.shape[0]} images but {len(plan.counts)} scenes in the plan; "
                          "give one image per scene")
        self.plan, self.height, self.width = plan, int(height), int(width)
        self.moving = plan.motion != "none"
        self.source_size = (_motion_source_size(self.images, self.height, self.width) if self.moving
                            else (self.height, self.width))
        self._pictures: dict[int, torch.Tensor] = {}
        self.workers = max(1, min(torch.get_num_threads(), os.cpu_count() or 1, _MAX_WORKERS)) if self.moving else 1
        self.step = self.workers * _MOVING_STEP_PER_WORKER if self.moving else _STILL_STEP

    def picture(self, scene: int) -> torch.Tensor:
        """Scene ``scene`` ready to show: [H,W,3] when still, [1,3,h,w] for grid_sample when moving."""
        if scene not in self._pictures:
            picture = _scene_picture(self.images, scene, *self.source_size)
            if self.moving:
                picture = picture.permute(2, 0, 1).unsqueeze(0).contiguous()
            self._pictures[scene] = picture
        return self._pictures[scene]

    def render(self, start: int = 0, stop: int | None = None, out: torch.Tensor | None = None,
               on_progress: ProgressCallback | None = None) -> torch.Tensor:
        """Frames [start, stop) as float32 [stop - start, H, W, 3], written into ``out`` when given.

        ``on_progress(done, count)`` follows every few frames; it may raise to stop (ComfyUI's Cancel).
        """
        frames = self.plan.frames(start, stop)
        count = len(frames)
        if out is None:
            out = _allocate_frames(count, self.height, self.width)
        elif tuple(out.shape) != (count, self.height, self.width, 3):
            raise ValueError(f"out has shape {list(out.shape)}, not {[count, self.height, self.width, 3]}")
        with ThreadPoolExecutor(self.workers, thread_name_prefix="3dlabs-timeline") as pool:
            for lo in range(0, count, self.step):
                self._render_step(pool, frames[lo:lo + self.step], out[lo:lo + self.step])
                if on_progress is not None:
                    on_progress(min(count, lo + self.step), count)
        return out

    def _render_step(self, pool: ThreadPoolExecutor, batch: Sequence[Frame], targets: torch.Tensor) -> None:
        lowest = batch[0].base.scene
        highest = max(frame.base.scene if frame.over is None else frame.over.scene for frame in batch)
        for scene in [s for s in self._pictures if not lowest <= s <= highest]:
            del self._pictures[scene]  # keeps memory constant however the chunks come
        if self.moving:
            self._render_moving(pool, batch, targets)
        else:
            self._render_still(batch, targets)

    def _render_still(self, batch: Sequence[Frame], targets: torch.Tensor) -> None:
        keys = [frame.base.scene if frame.over is None else None for frame in batch]
        for lo, hi in _runs(keys):
            frame = batch[lo]
            if frame.over is None:
                targets[lo:hi].copy_(self.picture(frame.base.scene).expand(hi - lo, -1, -1, -1))
            else:
                torch.lerp(self.picture(frame.base.scene), self.picture(frame.over.scene), frame.weight,
                           out=targets[lo])

    def _render_moving(self, pool: ThreadPoolExecutor, batch: Sequence[Frame], targets: torch.Tensor) -> None:
        for frame in batch:  # pictures are made here, so the workers only read them
            self.picture(frame.base.scene)
            if frame.over is not None:
                self.picture(frame.over.scene)
        # ComfyUI runs nodes under torch.inference_mode(), which is per thread: the workers must write
        # into frames made there in the same mode, or torch refuses the in-place update.
        inference = torch.is_inference_mode_enabled()
        tasks = [pool.submit(self._moving_frame, inference, frame, target) for frame, target in zip(batch, targets)]
        try:
            for task in tasks:
                task.result()
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    def _sample(self, view: View) -> torch.Tensor:
        """The view as [H,W,3]: a permuted view of grid_sample's [1,3,H,W] output, not yet clamped."""
        sample = F.grid_sample(self._pictures[view.scene], _grid([view], self.height, self.width),
                               mode="bilinear", padding_mode="border", align_corners=False)
        return sample[0].permute(1, 2, 0)

    def _moving_frame(self, inference: bool, frame: Frame, target: torch.Tensor) -> None:
        # Bilinear weights can sum to a hair over 1, hence the clamps.
        with torch.inference_mode(inference):
            torch.clamp(self._sample(frame.base), 0.0, 1.0, out=target)
            if frame.over is not None:
                target.lerp_(self._sample(frame.over).clamp_(0.0, 1.0), frame.weight)


def _runs(keys: Sequence) -> list[tuple[int, int]]:
    """[lo, hi) of each run of equal consecutive keys; a None key is a run of its own.

    Still frames are copied a run at a time because first writes into fresh memory go several times
    faster in one large op than frame by frame. Copies are exact, so runs never change a frame's
    bits; crossfade mixes (the None keys) are always computed one frame at a time.
    """
    runs: list[tuple[int, int]] = []
    for index, key in enumerate(keys):
        if runs and key is not None and keys[runs[-1][0]] == key:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def render_timeline(
    images: torch.Tensor,
    durations: Sequence[float],
    fps: float,
    motion: str = "none",
    transition: str = "cut",
    crossfade_seconds: float = 0.5,
    width: int = 0,
    height: int = 0,
    max_bytes: int | None = None,
    *,
    labels: Sequence | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[torch.Tensor, str]:
    """All frames [F,H,W,3] float32 for one image per duration, and the timeline as text.

    ``max_bytes`` None reads the limit from the environment; the limit is checked before anything
    is allocated. ``on_progress(done, total)`` is called every few frames; it may raise to stop.
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
    renderer = TimelineRenderer(images, plan, out_h, out_w)
    frames = renderer.render(0, plan.total, _allocate_frames(plan.total, out_h, out_w), on_progress)
    return frames, plan.text(out_h, out_w)
