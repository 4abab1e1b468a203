"""3DLabs Storyboard Timeline, the node: scene images become video frames timed by the scene plan.

ComfyUI's CreateVideo makes one frame of each image in a batch, so four scene images would last a
fraction of a second. This module owns the node's public contract (id, inputs, outputs, tooltips)
and its glue: the plan's durations, progress and Cancel through ``comfy.py``, the timeline text.
What each frame shows is decided in ``timeline_plan``, and the pixels come from ``timeline_render``;
their names are re-exported here, so this module stays the one import for the timeline.
"""

from __future__ import annotations

import torch

from . import comfy
from .timeline_plan import (
    DEFAULT_MAX_BYTES,
    KEN_BURNS_ZOOM,
    MAX_BYTES_ENV,
    MOTIONS,
    TRANSITIONS,
    TimelinePlan,
    crossfade_lengths,
    estimate_bytes,
    frame_counts,
    max_bytes_setting,
    motion_window,
    output_size,
    plan_durations,
    plan_timeline,
)
from .timeline_render import TimelineRenderer, render_timeline
from .types import CATEGORY, SCENE_PLAN

__all__ = [
    "DEFAULT_MAX_BYTES", "KEN_BURNS_ZOOM", "MAX_BYTES_ENV", "MOTIONS", "TRANSITIONS", "ThreeDLabsStoryboardTimeline",
    "TimelinePlan", "TimelineRenderer", "crossfade_lengths", "estimate_bytes", "frame_counts", "max_bytes_setting",
    "motion_window", "output_size", "plan_durations", "plan_timeline", "render_timeline",
]


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
