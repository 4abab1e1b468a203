"""3DLabs Storyboard Video, the node: the Storyboard Timeline as a VIDEO that is rendered while saved.

Storyboard Timeline hands every frame over at once, which caps a video at what fits in memory (a
5-minute 1080p storyboard would be 180 GB). This node takes the same inputs, plus optional sound, and
returns a ComfyUI VIDEO for core SaveVideo: the frames are rendered a few at a time while they are
encoded (``video_stream``), so any length saves in constant memory. This module owns the node's public
contract and its glue: the plan and output size come from ``timeline_plan``, the sound from
``video_audio``; it renders nothing itself.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import torch

from .timeline import ThreeDLabsStoryboardTimeline
from .timeline_plan import invalid, output_size, plan_durations, plan_timeline
from .types import CATEGORY
from .video_audio import audio_track
from .video_stream import StoryboardVideo

AUDIO_TOOLTIP = ("Narration or music for the video. It starts with the first frame and is cut at the last one, "
                 "or continued with silence if it is shorter.")


class ThreeDLabsStoryboardVideo:
    CATEGORY = CATEGORY
    DESCRIPTION = ("The Storyboard Timeline as a video: one image per scene, timed by the scene plan, with an "
                   "optional slow zoom or pan, crossfades and sound. Frames are made while the video is saved, "
                   "a few at a time, so videos of any length fit in memory. Connect to SaveVideo.")
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "timeline_text")
    OUTPUT_TOOLTIPS = (
        "The storyboard video (H.264 MP4 when saved): connect to SaveVideo.",
        "Each scene's start, end, duration and frame count, and the total.",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        # The timeline's own inputs, so names, defaults and tooltips can never drift apart.
        spec = copy.deepcopy(ThreeDLabsStoryboardTimeline.INPUT_TYPES())
        spec.setdefault("optional", {})["audio"] = ("AUDIO", {"tooltip": AUDIO_TOOLTIP})
        return spec

    def run(self, images, fps, motion, transition, crossfade_seconds, width, height, seconds_per_scene,
            scene_plan=None, audio=None, unique_id=None):
        count = int(images.shape[0]) if isinstance(images, torch.Tensor) and images.ndim == 4 else 1
        durations, labels, defaulted = plan_durations(scene_plan, count, seconds_per_scene)
        plan = plan_timeline(durations, fps, motion, transition, crossfade_seconds, labels)
        if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
            raise invalid(f"images must be an IMAGE batch [B,H,W,3], not {type(images).__name__}")
        out_h, out_w = output_size(int(images.shape[-3]), int(images.shape[-2]), width, height)
        if out_h % 2 or out_w % 2:
            # H.264 in yuv420p halves the colour resolution: odd sizes cannot be encoded.
            raise invalid(f"the video would be {out_w}x{out_h}, but H.264 video needs an even width and height",
                          hint="Set width or height (a multiple of 8 works everywhere).")
        duration = Fraction(plan.total) / Fraction(repr(float(plan.fps)))
        track = audio_track(audio, duration)
        # The batch is kept by reference: ComfyUI never changes a node's output in place.
        video = StoryboardVideo(images, plan, out_h, out_w, track)
        text = plan.text(out_h, out_w)
        if track is not None:
            text += "\n" + track.describe()
        if defaulted and scene_plan is not None:
            text += (f"\nNo planned duration for scene(s) {', '.join(map(str, defaulted))}: "
                     f"{float(seconds_per_scene):g} s each (seconds_per_scene).")
        return {"ui": {"text": [text]}, "result": (video, text)}
