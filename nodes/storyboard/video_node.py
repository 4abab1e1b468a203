"""3DLabs Storyboard Video, the node: the storyboard as a VIDEO that SaveVideo renders while it writes it
(the value is ``video.StoryboardVideo``)."""

from __future__ import annotations

from fractions import Fraction

import torch

from ..types import CATEGORY
from .caption_inputs import make_captions
from .clips import MODES, ClipFrames, retimed_durations, scene_clips
from .framing import fit_mode, frame_size
from .node_inputs import read_inputs, storyboard_inputs
from .sound_inputs import Sound
from .timeline import scene_durations
from .timeline_plan import invalid, plan_timeline
from .video import AUDIO_TOOLTIP, StoryboardVideo, audio_track


class ThreeDLabsStoryboardVideo:
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["storyboard", "storyboard video", "topic to video", "slideshow video", "animatic", "ken burns",
                      "images to video", "scene images to video", "captions", "subtitles", "short video",
                      "narration", "voice over", "music"]
    DESCRIPTION = ("The Storyboard Timeline as a video: one image per scene, timed by the scene plan, with an "
                   "optional slow zoom or pan, crossfades, narration, music and captions. Frames are made while "
                   "the video is saved, a few at a time, so videos of any length fit in memory. Connect to "
                   "SaveVideo.")
    RETURN_TYPES = ("VIDEO", "STRING", "STRING", "STRING")
    RETURN_NAMES = ("video", "timeline_text", "srt", "vtt")
    OUTPUT_TOOLTIPS = (
        "The storyboard video (H.264 MP4 when saved): connect to SaveVideo.",
        "Each scene's start, end, duration and frame count, and the total.",
        "The captions as SubRip (.srt) text, timed to the scenes (empty without captions).",
        "The captions as WebVTT (.vtt) text (empty without captions).",
    )
    FUNCTION = "run"
    INPUT_IS_LIST = True  # a list of caption texts, one per scene, arrives whole

    @classmethod
    def INPUT_TYPES(cls):
        # The timeline's own inputs, so names, defaults and tooltips can never drift apart.
        return storyboard_inputs({"audio": ("AUDIO", {"tooltip": AUDIO_TOOLTIP})}, video=True)

    def run(self, images, fps, motion, transition, crossfade_seconds, width, height, seconds_per_scene,
            scene_plan=None, audio=None, unique_id=None, **captions):
        a = read_inputs({"images": images, "fps": fps, "motion": motion, "transition": transition,
                         "crossfade_seconds": crossfade_seconds, "width": width, "height": height,
                         "seconds_per_scene": seconds_per_scene, "scene_plan": scene_plan, "audio": audio,
                         **captions})
        images, scene_plan = a["images"], a["scene_plan"]
        durations, labels, note = scene_durations(images, scene_plan, a["seconds_per_scene"])
        clips = scene_clips(a.get("clips"), len(durations), labels, scene_plan)
        durations = retimed_durations(durations, clips, a["fps"], a.get("clip_mode") or MODES[0])
        sound = Sound.from_inputs(a, len(durations), labels, scene_plan)
        durations, lengthened = sound.durations(durations)
        plan = plan_timeline(durations, a["fps"], a["motion"], a["transition"], a["crossfade_seconds"], labels)
        if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
            raise invalid(f"images must be an IMAGE batch [B,H,W,3], not {type(images).__name__}")
        out_h, out_w = frame_size(int(images.shape[-3]), int(images.shape[-2]), a["width"], a["height"], a.get("size"))
        fit = fit_mode(a.get("fit"), a.get("size"))
        if out_h % 2 or out_w % 2:
            # H.264 in yuv420p halves the colour resolution: odd sizes cannot be encoded.
            raise invalid(f"the video would be {out_w}x{out_h}, but H.264 video needs an even width and height",
                          hint="Set width or height (a multiple of 8 works everywhere).")
        track = sound.mix(plan) or audio_track(a["audio"], Fraction(plan.total) / Fraction(repr(float(plan.fps))))
        subtitles = make_captions(plan, out_h, out_w, scene_plan, a)
        # The batch is kept by reference: ComfyUI never changes a node's output in place.
        moving = ClipFrames(clips, plan, a.get("clip_mode") or MODES[0], out_h, out_w, fit) if clips else None
        video = StoryboardVideo(images, plan, out_h, out_w, track, captions=subtitles, fit=fit, clips=moving)
        text = plan.text(out_h, out_w) + ("\n" + track.describe() if track is not None else "") + note + lengthened
        if subtitles is not None and subtitles.files:
            text += f"\nCaptions: {len(subtitles.cues)} cues" + (", burned in" if subtitles.overlay else "")
        srt, vtt = (subtitles.srt(), subtitles.vtt()) if subtitles is not None else ("", "")
        return {"ui": {"text": [text]}, "result": (video, text, srt, vtt)}
