"""The Storyboard Timeline's frame plan: which scene(s) each frame shows, how mixed, how framed.

Pure Python (no torch): the frame count and a description of every frame, the output size, the memory
guard, the scene plan's durations and the timeline text. ``timeline`` turns planned frames into pixels.

- Frame counts: scene k ends at frame round_half_up(cumsum(durations)[k] * fps), so rounding errors never
  pile up. Durations and fps count as the decimals they print as (0.15 s is 0.15, not the binary float
  just below it). A scene that would get 0 frames is an error, never dropped.
- Length: a scene lasts at most MAX_SCENE_SECONDS (5 minutes, the longest plan 3DLabs makes: maxMinutes is
  1 to 5, so no scene of a plan can be longer), and a timeline at most MAX_TIMELINE_SECONDS (an hour: room
  for a plan the model overshot, or a long slideshow of seconds_per_scene, never 1e7 s). Either is an error
  naming the scene, raised while the durations are read, before anything the size of the timeline exists.
- Plan and images: image k is scene k. Scenes without a usable duration and images beyond the plan's
  scenes last seconds_per_scene; fewer images than scenes is an error (probably the wrong batch), unless
  the plan names the scene of each image of the batch (``image_scenes``, set by Load Project for a
  project with images for only some scenes, and as long as the batch): then image k is scene
  image_scenes[k], and the plan's other scenes are left out.
- Crossfade: the frame count is unchanged. Between scene k and k+1 a window of L = min(round_half_up(
  crossfade_seconds * fps), frames of scene k, of scene k+1) frames starts L // 2 frames before the cut;
  its i-th frame is (1 - w) * A + w * B, w = (i + 1) / (L + 1). Windows never overlap. Each scene's move
  runs over every frame where it is visible, crossfades included, so it never stalls under a fade.
- Motion (Ken Burns): zooms go between scale 1.0 and 1.15 (centred) at a constant rate; pans move a
  window of 1/1.15 of the picture as a camera does: "pan left" travels from the picture's right edge to
  its left, so the content slides right.
- Output size: 0 keeps the batch's size, or its aspect when the other side is set (rounded to an even
  number, which video encoders need); otherwise pictures are resized, aspect ignored, as ComfyUI does.
- Memory: frames * height * width * 3 * 4 bytes is checked against ``THREEDLABS_TIMELINE_MAX_BYTES``
  (default 4 GiB) before anything is allocated.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from itertools import accumulate

from ..api.errors import ConfigError, ValidationError

MOTIONS = ("none", "slow zoom in", "slow zoom out", "pan left", "pan right")
TRANSITIONS = ("cut", "crossfade")
KEN_BURNS_ZOOM = 1.15
DEFAULT_MAX_BYTES = 4 * 1024**3
MAX_SCENE_SECONDS = 5 * 60
MAX_TIMELINE_SECONDS = 60 * 60
MAX_BYTES_ENV = "THREEDLABS_TIMELINE_MAX_BYTES"


def invalid(detail: str, hint: str = "") -> ValidationError:
    # The generic summary says nothing was submitted, which is true but beside the point for local work.
    return ValidationError(detail[:1].upper() + detail[1:], hint=hint,
                           summary="The Storyboard Timeline cannot work with these inputs.")


def _exact(value: float, what: str) -> Fraction:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise invalid(f"{what} must be a positive number of seconds or frames, not {value!r}")
    # repr() is the shortest decimal that reads back as this float: the number the user typed.
    return Fraction(repr(number))


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def frame_counts(durations: Sequence[float], fps: float, labels: Sequence | None = None) -> list[int]:
    """Frames per scene by cumulative rounding; the sum is round_half_up(sum(durations) * fps)."""
    rate = _exact(fps, "fps")
    counts: list[int] = []
    elapsed = Fraction(0)
    previous = 0
    for index, duration in enumerate(durations):
        name = labels[index] if labels is not None else index + 1
        elapsed += _exact(duration, f"the duration of scene {name}")
        if float(duration) > MAX_SCENE_SECONDS or elapsed > MAX_TIMELINE_SECONDS:
            raise _too_long(name, float(duration), float(elapsed))
        boundary = _round_half_up(elapsed * rate)
        if boundary == previous:
            raise invalid(f"scene {name} lasts {float(duration):g} s, which rounds to no frame at all at "
                          f"{float(fps):g} fps; raise the fps or that scene's duration")
        counts.append(boundary - previous)
        previous = boundary
    return counts


def _too_long(name, duration: float, elapsed: float):
    if duration > MAX_SCENE_SECONDS:
        limit = (f"the {MAX_SCENE_SECONDS // 60} minutes ({MAX_SCENE_SECONDS} s) a 3DLabs plan can last "
                 "(maxMinutes is 1 to 5)")
        return invalid(f"scene {name} lasts {duration:g} s, longer than {limit}",
                       hint="No 3DLabs plan has such a scene: fix its duration (or seconds_per_scene).")
    return invalid(f"the scenes up to scene {name} ({duration:g} s) already last {elapsed:g} s, past the "
                   f"{MAX_TIMELINE_SECONDS // 60} minutes a storyboard may last",
                   hint="Shorten the scenes (or seconds_per_scene), or split the storyboard into parts.")


def crossfade_lengths(counts: Sequence[int], crossfade_seconds: float, fps: float) -> list[int]:
    """Frames of the crossfade window at each of the len(counts) - 1 cuts (0 means a hard cut)."""
    if crossfade_seconds <= 0 or len(counts) < 2:
        return [0] * max(0, len(counts) - 1)
    wanted = _round_half_up(_exact(crossfade_seconds, "crossfade_seconds") * _exact(fps, "fps"))
    return [min(wanted, counts[k], counts[k + 1]) for k in range(len(counts) - 1)]


def motion_window(motion: str, t: float) -> tuple[float, float]:
    """(scale, horizontal centre) of the view at progress t in 0..1, in grid_sample's -1..1 units."""
    if motion == "slow zoom in":
        return KEN_BURNS_ZOOM**t, 0.0
    if motion == "slow zoom out":
        return KEN_BURNS_ZOOM ** (1.0 - t), 0.0
    travel = 1.0 - 1.0 / KEN_BURNS_ZOOM  # how far the window's centre can go from the middle
    if motion in ("pan left", "pan right"):
        return KEN_BURNS_ZOOM, (travel if motion == "pan left" else -travel) * (1.0 - 2.0 * t)
    return 1.0, 0.0


@dataclass(frozen=True)
class View:
    """One scene's picture as one frame shows it: zoomed by ``scale`` around ``centre`` (-1..1)."""

    scene: int  # 0-based: image ``scene`` of the batch
    scale: float = 1.0
    centre: float = 0.0


@dataclass(frozen=True)
class Frame:
    """Frame ``index``: ``base``, or (1 - weight) * base + weight * ``over`` during a crossfade."""

    index: int
    base: View
    over: View | None = None
    weight: float = 0.0


@dataclass(frozen=True)
class TimelinePlan:
    """Frames per scene and crossfade windows (one per cut), and from them the description of any frame."""

    fps: float
    motion: str
    counts: tuple[int, ...]
    fades: tuple[int, ...]
    labels: tuple = ()

    @property
    def total(self) -> int:
        return sum(self.counts)

    @cached_property
    def boundaries(self) -> list[int]:
        """First frame of each scene's own frames, then the total."""
        return [0, *accumulate(self.counts)]

    def span(self, scene: int) -> tuple[int, int]:
        """Frames [first, last) where ``scene`` is visible, crossfades included."""
        edges = self.boundaries
        first = edges[scene] - self.fades[scene - 1] // 2 if scene > 0 else 0
        last = edges[scene + 1] - self.fades[scene] // 2 + self.fades[scene] if scene < len(self.fades) else edges[-1]
        return first, last

    def _view(self, scene: int, index: int) -> View:
        first, last = self.span(scene)
        t = (index - first) / (last - first - 1) if last - first > 1 else 0.0
        return View(scene, *motion_window(self.motion, t))

    def frame(self, index: int) -> Frame:
        if not 0 <= index < self.total:
            raise IndexError(f"frame {index} is outside the timeline's {self.total} frames")
        scene = bisect.bisect_right(self.boundaries, index) - 1
        if scene + 1 < len(self.counts) and index >= self.span(scene + 1)[0]:
            scene += 1  # in the window before the next cut: the next scene fades in over this one
        first = self.span(scene)[0]
        if scene > 0 and index < first + self.fades[scene - 1]:
            weight = (index - first + 1) / (self.fades[scene - 1] + 1)
            return Frame(index, self._view(scene - 1, index), self._view(scene, index), weight)
        return Frame(index, self._view(scene, index))

    def frames(self, start: int = 0, stop: int | None = None) -> list[Frame]:
        stop = self.total if stop is None else stop
        if not 0 <= start <= stop <= self.total:
            raise IndexError(f"frames [{start}, {stop}) are outside the timeline's {self.total} frames")
        return [self.frame(index) for index in range(start, stop)]

    def text(self, height: int, width: int) -> str:
        """Each scene's start, end, duration and frame count, and the total."""
        def seconds(frames: int) -> str:
            return f"{frames / self.fps:.2f} s"

        edges = self.boundaries
        lines = [f"Scene {label}: {seconds(start)} - {seconds(end)} ({seconds(end - start)}, {end - start} frames)"
                 for label, start, end in zip(self.labels, edges, edges[1:])]
        extras = [f"motion {self.motion}"]
        if any(self.fades):
            extras.append(f"crossfades of up to {max(self.fades)} frames")
        lines.append(f"Total: {seconds(self.total)}, {self.total} frames at {float(self.fps):g} fps, "
                     f"{width}x{height} ({', '.join(extras)})")
        return "\n".join(lines)


def plan_timeline(durations: Sequence[float], fps: float, motion: str = "none", transition: str = "cut",
                  crossfade_seconds: float = 0.5, labels: Sequence | None = None) -> TimelinePlan:
    """The plan of one scene per duration (see the module's rules); labels default to 1, 2, 3..."""
    check_choices(motion, transition)
    durations = list(durations)
    labels = list(labels) if labels is not None else list(range(1, len(durations) + 1))
    if len(labels) != len(durations):
        raise invalid(f"there are {len(durations)} durations but {len(labels)} scene labels")
    counts = frame_counts(durations, fps, labels)
    fades = crossfade_lengths(counts, crossfade_seconds if transition == "crossfade" else 0.0, fps)
    return TimelinePlan(float(fps), motion, tuple(counts), tuple(fades), tuple(labels))


def check_choices(motion: str, transition: str) -> None:
    if motion not in MOTIONS:
        raise invalid(f"motion must be one of {', '.join(MOTIONS)}, not {motion!r}")
    if transition not in TRANSITIONS:
        raise invalid(f"transition must be one of {', '.join(TRANSITIONS)}, not {transition!r}")


def output_size(source_height: int, source_width: int, width: int = 0, height: int = 0) -> tuple[int, int]:
    """(height, width) of the frames: 0 keeps the source's size, or its aspect when the other is set."""
    width, height = int(width), int(height)
    if width < 0 or height < 0:
        raise invalid(f"width and height must be 0 (keep) or positive, not {width}x{height}")
    if width and not height:
        return max(2, 2 * round(width * source_height / source_width / 2)), width
    if height and not width:
        return height, max(2, 2 * round(height * source_width / source_height / 2))
    return height or source_height, width or source_width


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


def check_memory(frames: int, height: int, width: int, fps: float, max_bytes: int) -> None:
    size = estimate_bytes(frames, height, width)
    if size > max_bytes:
        raise invalid(
            f"the timeline would need {size / 1024**3:.2f} GiB for {frames} frames of {width}x{height}, above "
            f"the limit of {max_bytes / 1024**3:.2f} GiB",
            hint=f"Lower the fps (now {float(fps):g}) or the output width/height, or raise "
                 f"{MAX_BYTES_ENV} (bytes) if this machine has the memory.",
        )


def _seconds_or_none(value) -> float | None:
    """A planned duration as seconds, or None when it is missing, zero or not a number."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _scenes_of(scene_plan) -> tuple[object, list]:
    """(the plan, its scenes) of a scene_plan input."""
    if isinstance(scene_plan, (list, tuple)) and len(scene_plan) == 1:  # from a list-mode upstream
        scene_plan = scene_plan[0]
    scenes = getattr(scene_plan, "scenes", None)  # duck-typed: a pack loaded twice has two ScenePlan classes
    if not isinstance(scenes, list):
        raise invalid(f"the scene_plan input must come from 3DLabs Scene Plan or Load Project, not "
                      f"{type(scene_plan).__name__}")
    return scene_plan, scenes


def _image_scenes(scene_plan, image_count: int) -> list[int] | None:
    """The scene of each image, when the plan names them for a batch of this size; else None."""
    covered = getattr(scene_plan, "image_scenes", None)
    # Another count means the batch was changed on the way, and the numbers no longer say which image is which.
    if (isinstance(covered, (list, tuple)) and len(covered) == image_count
            and all(isinstance(n, int) and not isinstance(n, bool) for n in covered)):
        return list(covered)
    return None


def plan_durations(scene_plan, image_count: int, seconds_per_scene: float) -> tuple[list[float], list, list]:
    """(durations, labels, labels of scenes that fell back to seconds_per_scene) for the images."""
    if scene_plan is None:
        return [float(seconds_per_scene)] * image_count, list(range(1, image_count + 1)), []
    scene_plan, scenes = _scenes_of(scene_plan)
    covered = _image_scenes(scene_plan, image_count)
    if covered is not None:
        by_number: dict = {}
        for scene in scenes:
            by_number.setdefault(scene.number, scene)
        labels = covered
        planned = [_seconds_or_none(by_number[n].duration) if n in by_number else None for n in covered]
    elif image_count < len(scenes):
        # Probably the wrong batch is wired in: guessing which scenes the images are would be worse.
        raise invalid(f"the scene plan has {len(scenes)} scenes but only {image_count} images "
                      "arrived; connect one image per scene, in scene order")
    else:
        # Extra images (say, an added ending) continue the numbering at seconds_per_scene each.
        first_extra = max([int(s.number) for s in scenes], default=0) + 1
        labels = [s.number for s in scenes] + list(range(first_extra, first_extra + image_count - len(scenes)))
        planned = [_seconds_or_none(s.duration) for s in scenes] + [None] * (image_count - len(scenes))
    durations = [float(seconds_per_scene) if p is None else p for p in planned]
    return durations, labels, [label for label, p in zip(labels, planned) if p is None]


def scenes_left_out(scene_plan, image_count: int) -> list:
    """The plan's scenes that ``plan_durations`` leaves out for lack of an image (see the module's rules)."""
    if scene_plan is None:
        return []
    scene_plan, scenes = _scenes_of(scene_plan)
    covered = _image_scenes(scene_plan, image_count)
    return [] if covered is None else [s.number for s in scenes if s.number not in covered]
