"""3DLabs Storyboard Timeline: scene images become video frames that follow the scene plan's timing.

ComfyUI's CreateVideo makes one frame of each image in a batch, so four scene images would last a
fraction of a second. This module owns turning one image per scene into a frame batch whose length
follows the planned durations, with an optional Ken Burns move and crossfades, computed locally in
torch. It knows no HTTP and imports no ComfyUI (progress and Cancel go through ``comfy.py``).

Rules, in one place:

- Frame counts: boundary_k = round_half_up(cumsum(durations)[k] * fps) and scene k gets
  boundary_k - boundary_(k-1) frames, so the total is round_half_up(total duration * fps) exactly and
  the rounding error never piles up. Durations and fps are rounded as the decimals they print as
  (0.15 s means 0.15, not the binary float just below it), so results do not hinge on float noise.
  A scene that would get 0 frames is an error (raise fps or the scene's duration), never dropped.
- Plan and images: image k is scene k of the plan. Scenes without a usable duration (missing, zero,
  not a number) and images beyond the plan's scenes last seconds_per_scene; fewer images than scenes
  is an error (the wrong batch is probably wired in), and so is a plan that is not a scene plan.
- Crossfade: the frame count is unchanged. Between scene k and k+1 a window of
  L = min(round_half_up(crossfade_seconds * fps), frames of scene k, frames of scene k+1) frames starts
  L // 2 frames before the cut; its i-th frame (i = 0..L-1) is (1 - w) * A + w * B with
  w = (i + 1) / (L + 1), A and B the two scenes' pictures at that frame. Each scene's move runs over
  every frame where it is visible, crossfade overlaps included, so it never stalls under a fade.
- Motion (Ken Burns), per frame, from the scene's image: "slow zoom in" goes from scale 1.0 to 1.15
  (centred crop window shrinking) at a constant rate, "slow zoom out" the reverse; "pan left" / "pan
  right" move a window of 1/1.15 of the picture, as a camera does: "pan left" travels from the
  picture's right edge to its left edge, so the content slides right in the frame. Bilinear sampling
  in the conventions of grid_sample (align_corners=False, border padding).
- Output size: width and height 0 keep the batch's size; one of them 0 keeps the batch's aspect
  (the derived side rounded to an even number, which video encoders need). A different size is
  reached by resizing, aspect ignored, as ComfyUI's own image scaling does; crop upstream to keep it.
- Memory: frames * height * width * 3 * 4 bytes is checked against ``THREEDLABS_TIMELINE_MAX_BYTES``
  (default 4 GiB) before anything is allocated. The output is allocated once and filled in place, a
  few frames at a time by a small thread pool; working memory beyond it is one scene picture, one
  more frame for pans and crossfades, and about a megabyte of scratch per thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from . import comfy
from .api.errors import ConfigError, ValidationError
from .api.models import ScenePlan
from .types import CATEGORY, SCENE_PLAN

MOTIONS = ("none", "slow zoom in", "slow zoom out", "pan left", "pan right")
TRANSITIONS = ("cut", "crossfade")
KEN_BURNS_ZOOM = 1.15
DEFAULT_MAX_BYTES = 4 * 1024**3
MAX_BYTES_ENV = "THREEDLABS_TIMELINE_MAX_BYTES"

# Motion frames are sampled in blocks of a few output rows: the temporaries stay in L1/L2 cache, and
# each op stays under torch's parallel grain (32768 elements) so it runs on its own thread. Frames are
# spread over a small pool of threads instead: on a busy CPU, torch's intra-op threads wait on each
# other at every op, which made whole-frame or large-block passes 3-10x slower than this.
_SERIAL_ELEMENTS = 32768
_MAX_WORKERS = 8
_CHUNK = 4  # frames per pool task; progress (and Cancel) is checked after each

ProgressCallback = Callable[[int, int], None]


def _invalid(detail: str, hint: str = "") -> ValidationError:
    # The generic summary says nothing was submitted, which is true but beside the point for local work.
    return ValidationError(detail[:1].upper() + detail[1:], hint=hint,
                           summary="The Storyboard Timeline cannot work with these inputs.")


# --- timing ---------------------------------------------------------------------------------------


def _exact(value: float, what: str) -> Fraction:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise _invalid(f"{what} must be a positive number of seconds or frames, not {value!r}")
    # repr() is the shortest decimal that reads back as this float: the number the user typed.
    return Fraction(repr(number))


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def frame_counts(durations: Sequence[float], fps: float) -> list[int]:
    """Frames per scene by cumulative rounding; the sum is round_half_up(sum(durations) * fps)."""
    rate = _exact(fps, "fps")
    counts: list[int] = []
    elapsed = Fraction(0)
    previous = 0
    for index, duration in enumerate(durations):
        elapsed += _exact(duration, f"the duration of scene {index + 1}")
        boundary = _round_half_up(elapsed * rate)
        if boundary == previous:
            raise _invalid(
                f"scene {index + 1} lasts {float(duration):g} s, which rounds to no frame at all at "
                f"{float(fps):g} fps; raise the fps or that scene's duration"
            )
        counts.append(boundary - previous)
        previous = boundary
    return counts


def crossfade_lengths(counts: Sequence[int], crossfade_seconds: float, fps: float) -> list[int]:
    """Frames of the crossfade window at each of the len(counts) - 1 cuts (0 means a hard cut)."""
    if crossfade_seconds <= 0 or len(counts) < 2:
        return [0] * max(0, len(counts) - 1)
    wanted = _round_half_up(_exact(crossfade_seconds, "crossfade_seconds") * _exact(fps, "fps"))
    return [min(wanted, counts[k], counts[k + 1]) for k in range(len(counts) - 1)]


# --- size and memory ------------------------------------------------------------------------------


def output_size(source_height: int, source_width: int, width: int = 0, height: int = 0) -> tuple[int, int]:
    """(height, width) of the frames: 0 keeps the source's size, or its aspect when the other is set."""
    width, height = int(width), int(height)
    if width < 0 or height < 0:
        raise _invalid(f"width and height must be 0 (keep) or positive, not {width}x{height}")
    if width and height:
        return height, width
    if width:
        return max(2, 2 * round(width * source_height / source_width / 2)), width
    if height:
        return height, max(2, 2 * round(height * source_width / source_height / 2))
    return source_height, source_width


def estimate_bytes(frames: int, height: int, width: int) -> int:
    return frames * height * width * 3 * 4


def max_bytes_setting() -> int:
    """The memory limit: ``THREEDLABS_TIMELINE_MAX_BYTES`` (bytes) when set, else 4 GiB."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_BYTES_ENV} must be a positive number of bytes, not {raw!r}")
    return value


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB"


def check_memory(frames: int, height: int, width: int, fps: float, max_bytes: int) -> None:
    size = estimate_bytes(frames, height, width)
    if size > max_bytes:
        raise _invalid(
            f"the timeline would need {_gib(size)} for {frames} frames of {width}x{height}, above the "
            f"limit of {_gib(max_bytes)}",
            hint=f"Lower the fps (now {float(fps):g}) or the output width/height, or raise "
                 f"{MAX_BYTES_ENV} (bytes) if this machine has the memory.",
        )


def _allocate_frames(count: int, height: int, width: int) -> torch.Tensor:
    # numpy asks the kernel for transparent huge pages on large buffers and torch's allocator does not;
    # first writes into fresh memory then fault 2x faster, which dominates the "none" motion.
    return torch.from_numpy(np.empty((count, height, width, 3), dtype=np.float32))


# --- pictures -------------------------------------------------------------------------------------


def _as_batch(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise _invalid(f"images must be an IMAGE batch (a tensor), not {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[1] < 1 or images.shape[2] < 1:
        raise _invalid(f"images must be an IMAGE batch [B,H,W,3] with at least one image, "
                       f"not shape {list(images.shape)}")
    if images.shape[-1] not in (1, 3, 4):
        raise _invalid(f"images must have 3 colour channels, not {images.shape[-1]}")
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


def motion_window(motion: str, t: float) -> tuple[float, float]:
    """(scale, horizontal centre) of the view at progress t in 0..1, in grid_sample's -1..1 units."""
    if motion == "slow zoom in":
        return KEN_BURNS_ZOOM**t, 0.0
    if motion == "slow zoom out":
        return KEN_BURNS_ZOOM ** (1.0 - t), 0.0
    travel = 1.0 - 1.0 / KEN_BURNS_ZOOM  # how far the window's centre can go from the middle
    if motion == "pan left":
        return KEN_BURNS_ZOOM, travel * (1.0 - 2.0 * t)
    if motion == "pan right":
        return KEN_BURNS_ZOOM, -travel * (1.0 - 2.0 * t)
    return 1.0, 0.0


def _taps(n_out: int, n_in: int, scale: float, centre: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps along one axis: input index pairs and weights for each output pixel."""
    u = (torch.arange(n_out, dtype=torch.float64) * 2 + 1) / n_out - 1
    position = ((u / scale + centre + 1) * n_in - 1) / 2
    position.clamp_(0, n_in - 1)  # border padding
    first = position.floor()
    weight = (position - first).to(torch.float32)
    first = first.long()
    return first, (first + 1).clamp_(max=n_in - 1), weight


class _Sampler:
    """Ken Burns views of one picture, written straight into frame slots.

    Bilinear in two passes (rows, then columns), each a gather of the two neighbours and a lerp. The
    picture is clamped to 0..1 beforehand and every lerp is a convex mix with weights in 0..1, so the
    frames stay in 0..1 without another pass over them.
    """

    def __init__(self, source: torch.Tensor, height: int, width: int, fixed_scale: float | None = None) -> None:
        rows_in, self.cols_in = source.shape[0], source.shape[1]
        self.rows_in = rows_in
        self.flat = source.reshape(rows_in, self.cols_in * 3)
        self.height, self.width = height, width
        self.block = max(1, _SERIAL_ELEMENTS // (3 * max(self.cols_in, width)))
        self.channel = torch.arange(3)
        self.rows_done = None
        if fixed_scale is not None:
            # A pan keeps its scale and moves sideways only: the row pass is the same for every frame.
            upper, lower, weight = _taps(height, rows_in, fixed_scale, 0.0)
            self.rows_done = self.flat.index_select(0, upper).lerp_(self.flat.index_select(0, lower), weight[:, None])

    def render(self, scale: float, centre: float, out: torch.Tensor) -> None:
        if self.rows_done is None:
            rows_a, rows_b, row_w = _taps(self.height, self.rows_in, scale, 0.0)
            row_w = row_w[:, None]
        cols_a, cols_b, col_w = _taps(self.width, self.cols_in, scale, centre)
        # Index whole pixels in the flattened [rows, cols*3] picture: one gather per block, not three.
        cols_a = (cols_a[:, None] * 3 + self.channel).reshape(-1)
        cols_b = (cols_b[:, None] * 3 + self.channel).reshape(-1)
        col_w = col_w.repeat_interleave(3)
        target = out.view(self.height, self.width * 3)
        for start in range(0, self.height, self.block):
            rows = slice(start, min(self.height, start + self.block))
            if self.rows_done is not None:
                lines = self.rows_done[rows]
            else:
                upper = self.flat.index_select(0, rows_a[rows])
                lines = upper.lerp_(self.flat.index_select(0, rows_b[rows]), row_w[rows])
            left = lines.index_select(1, cols_a)
            torch.lerp(left, lines.index_select(1, cols_b), col_w, out=target[rows])


# --- rendering ------------------------------------------------------------------------------------


def _format_seconds(frames: int, fps: float) -> str:
    return f"{frames / fps:.2f} s"


def timeline_text(counts: Sequence[int], fps: float, labels: Sequence, height: int, width: int,
                  motion: str, fades: Sequence[int]) -> str:
    lines = []
    start = 0
    for label, count in zip(labels, counts):
        end = start + count
        lines.append(f"Scene {label}: {_format_seconds(start, fps)} - {_format_seconds(end, fps)} "
                     f"({_format_seconds(count, fps)}, {count} frames)")
        start = end
    extras = [f"motion {motion}"]
    if any(fades):
        extras.append(f"crossfades of up to {max(fades)} frames")
    lines.append(f"Total: {_format_seconds(start, fps)}, {start} frames at {float(fps):g} fps, "
                 f"{width}x{height} ({', '.join(extras)})")
    return "\n".join(lines)


@dataclass(frozen=True)
class _SceneSpan:
    """Frames [first, last) show a scene; [first, head_end) fade in over the previous scene."""

    first: int
    last: int
    head_end: int

    def fade_weight(self, frame: int) -> float:
        return (frame - self.first + 1) / (self.head_end - self.first + 1)


def _in_mode(inference: bool, fn, *args):
    with torch.inference_mode(inference):
        return fn(*args)


def _worker_count() -> int:
    # Each op holds the GIL for a few microseconds of its ~20: beyond about 8 threads they queue on it.
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1, _MAX_WORKERS))


def _fill_still(frames: torch.Tensor, picture: torch.Tensor, span: _SceneSpan) -> None:
    fading = span.head_end - span.first
    if fading:
        weights = torch.tensor([span.fade_weight(f) for f in range(span.first, span.head_end)], dtype=torch.float32)
        frames[span.first:span.head_end].lerp_(picture.expand(fading, -1, -1, -1), weights[:, None, None, None])
    frames[span.head_end:span.last].copy_(picture.expand(span.last - span.head_end, -1, -1, -1))


def _fill_moving(frames: torch.Tensor, sampler: _Sampler, motion: str, span: _SceneSpan, lo: int, hi: int) -> None:
    length = span.last - span.first
    scratch = None
    for f in range(lo, hi):
        scale, centre = motion_window(motion, (f - span.first) / (length - 1) if length > 1 else 0.0)
        if f < span.head_end:
            if scratch is None:
                scratch = torch.empty_like(frames[f])
            sampler.render(scale, centre, scratch)
            frames[f].lerp_(scratch, span.fade_weight(f))
        else:
            sampler.render(scale, centre, frames[f])


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
    """Frames [F,H,W,3] float32 for one image per duration, and the timeline as text (see module doc).

    ``max_bytes`` None reads the limit from the environment. ``on_progress(done, total)`` is called
    every few frames; it may raise to stop the render (ComfyUI's Cancel).
    """
    if motion not in MOTIONS:
        raise _invalid(f"motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
    if transition not in TRANSITIONS:
        raise _invalid(f"transition must be one of {', '.join(TRANSITIONS)}, not {transition!r}")
    images = _as_batch(images)
    durations = list(durations)
    if len(durations) != images.shape[0]:
        raise _invalid(f"there are {images.shape[0]} images but {len(durations)} durations; "
                       "give one duration per image")
    labels = list(labels) if labels is not None else list(range(1, len(durations) + 1))
    if len(labels) != len(durations):
        raise _invalid(f"there are {len(durations)} durations but {len(labels)} scene labels")
    counts = frame_counts(durations, fps)
    fades = crossfade_lengths(counts, crossfade_seconds if transition == "crossfade" else 0.0, fps)
    out_h, out_w = output_size(int(images.shape[1]), int(images.shape[2]), width, height)
    total = sum(counts)
    check_memory(total, out_h, out_w, fps, max_bytes_setting() if max_bytes is None else int(max_bytes))

    frames = _allocate_frames(total, out_h, out_w)
    boundaries = np.cumsum([0, *counts]).tolist()
    # Window j (between scene j and j+1) covers frames [fade_start[j], fade_start[j] + fades[j]).
    fade_start = [boundaries[j + 1] - fades[j] // 2 for j in range(len(fades))]
    src_h, src_w = _motion_source_size(images, out_h, out_w) if motion != "none" else (out_h, out_w)
    workers = _worker_count() if motion != "none" else 1
    # ComfyUI runs nodes under torch.inference_mode(): the output was made there, and pool threads must
    # write into it in the same mode, or torch refuses the in-place update.
    inference = torch.is_inference_mode_enabled()
    done = 0
    with ThreadPoolExecutor(workers, thread_name_prefix="3dlabs-timeline") as pool:
        try:
            for k in range(len(counts)):
                first = fade_start[k - 1] if k > 0 else 0
                last = fade_start[k] + fades[k] if k < len(fades) else total
                span = _SceneSpan(first, last, first + fades[k - 1] if k > 0 else first)
                source = _scene_picture(images, k, src_h, src_w)
                if motion == "none":
                    _fill_still(frames, source, span)
                else:
                    # Scenes go one after another: a scene's first frames blend over the previous scene's
                    # last ones, which must be there already. Within a scene, chunks run in parallel.
                    pan = motion in ("pan left", "pan right")
                    sampler = _Sampler(source, out_h, out_w, KEN_BURNS_ZOOM if pan else None)
                    chunks = [pool.submit(_in_mode, inference, _fill_moving, frames, sampler, motion, span, lo,
                                          min(last, lo + _CHUNK)) for lo in range(first, last, _CHUNK)]
                    for index, chunk in enumerate(chunks):
                        chunk.result()
                        if on_progress is not None:
                            on_progress(min(done + counts[k], done + (index + 1) * _CHUNK), total)
                done += counts[k]
                if on_progress is not None:
                    on_progress(done, total)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # Cancel: queued chunks never start
            raise
    return frames, timeline_text(counts, fps, labels, out_h, out_w, motion, fades)


# --- the node -------------------------------------------------------------------------------------


def _seconds_or_none(value) -> float | None:
    """A planned duration as seconds, or None when it is missing, zero or not a number."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def plan_durations(scene_plan: ScenePlan | None, image_count: int,
                   seconds_per_scene: float) -> tuple[list[float], list, list]:
    """(durations, labels, labels of scenes that fell back to seconds_per_scene) for the images."""
    if scene_plan is None:
        labels = list(range(1, image_count + 1))
        return [float(seconds_per_scene)] * image_count, labels, []
    if isinstance(scene_plan, (list, tuple)) and len(scene_plan) == 1:  # from a list-mode upstream
        scene_plan = scene_plan[0]
    scenes = getattr(scene_plan, "scenes", None)  # duck-typed: a pack loaded twice has two ScenePlan classes
    if not isinstance(scenes, list):
        raise _invalid(f"the scene_plan input must come from 3DLabs Scene Plan or Load Project, not "
                       f"{type(scene_plan).__name__}")
    if image_count < len(scenes):
        # Probably the wrong batch is wired in: guessing which scenes the images are would be worse.
        raise _invalid(f"the scene plan has {len(scenes)} scenes but only {image_count} images "
                       "arrived; connect one image per scene, in scene order")
    durations, labels, defaulted = [], [], []
    for scene in scenes:
        planned = _seconds_or_none(scene.duration)
        usable = planned is not None
        durations.append(planned if usable else float(seconds_per_scene))
        labels.append(scene.number)
        if not usable:
            defaulted.append(scene.number)
    # Extra images (say, an added ending) continue the numbering at seconds_per_scene each.
    next_number = max([int(s.number) for s in scenes], default=0) + 1
    for offset in range(image_count - len(scenes)):
        durations.append(float(seconds_per_scene))
        labels.append(next_number + offset)
        defaulted.append(next_number + offset)
    return durations, labels, defaulted


class ThreeDLabsStoryboardTimeline:
    CATEGORY = CATEGORY
    DESCRIPTION = ("Turns one image per scene into video frames that last as long as the scene plan says, with an "
                   "optional slow zoom or pan and crossfades, computed locally. Connect frames and fps to "
                   "CreateVideo.")
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "timeline_text")
    OUTPUT_TOOLTIPS = (
        "Every frame of the animatic, in order: connect to CreateVideo.",
        "The frame rate the frames were made for: connect to CreateVideo's fps.",
        "Each scene's start, end, duration and frame count, and the total.",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
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

    def run(self, images, fps, motion, transition, crossfade_seconds, width, height, seconds_per_scene,
            scene_plan=None, unique_id=None):
        count = int(images.shape[0]) if isinstance(images, torch.Tensor) and images.ndim == 4 else 1
        durations, labels, defaulted = plan_durations(scene_plan, count, seconds_per_scene)
        progress = comfy.NodeProgress(unique_id)
        shown = [-1]

        def on_progress(done: int, total: int) -> None:
            comfy.check_interrupt()
            percent = done * 100 // max(1, total)
            if percent != shown[0]:  # one websocket message per percent, not per frame
                shown[0] = percent
                progress.update(done / max(1, total))

        frames, text = render_timeline(images, durations, fps, motion, transition, crossfade_seconds, width,
                                       height, max_bytes_setting(), labels=labels, on_progress=on_progress)
        progress.text(text.splitlines()[-1])
        if defaulted and scene_plan is not None:
            text += (f"\nNo planned duration for scene(s) {', '.join(map(str, defaulted))}: "
                     f"{float(seconds_per_scene):g} s each (seconds_per_scene).")
        return {"ui": {"text": [text]}, "result": (frames, float(fps), text)}
