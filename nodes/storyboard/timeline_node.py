"""3DLabs Storyboard Timeline, the node: scene images become video frames timed by the scene plan (the
renderer is ``timeline``)."""

from __future__ import annotations

from .. import comfy
from ..types import CATEGORY
from .timeline import max_bytes_setting, render_timeline, scene_durations, timeline_inputs


class ThreeDLabsStoryboardTimeline:
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["storyboard", "timeline", "animatic", "ken burns", "images to frames", "slideshow",
                      "topic to video"]
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
        return timeline_inputs()

    def run(self, images, fps, motion, transition, crossfade_seconds, width, height, seconds_per_scene,
            scene_plan=None, unique_id=None):
        durations, labels, note = scene_durations(images, scene_plan, seconds_per_scene)
        progress = comfy.NodeProgress(unique_id)
        shown = [-1]

        def on_progress(done: int, total: int) -> None:
            comfy.check_interrupt()
            if done * 100 // total != shown[0]:  # one websocket message per percent, not per frame
                shown[0] = done * 100 // total
                progress.update(done / total)

        frames, text = render_timeline(images, durations, fps, motion, transition, crossfade_seconds, width,
                                       height, max_bytes_setting(), labels=labels, on_progress=on_progress)
        progress.text(text.splitlines()[-1])
        text += note
        return {"ui": {"text": [text]}, "result": (frames, float(fps), text)}
