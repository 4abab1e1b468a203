"""3DLabs Storyboard Timeline, the node: scene images become video frames timed by the scene plan (the
renderer is ``timeline``)."""

from __future__ import annotations

from .. import comfy
from ..types import CATEGORY
from .caption_inputs import make_captions
from .clips import MODES, ClipFrames, retimed_durations, scene_clips
from .framing import fit_mode, frame_size
from .node_inputs import read_inputs, storyboard_inputs
from .sound_inputs import Sound, silence
from .timeline import TimelineRenderer, scene_durations
from .timeline_plan import check_memory, max_bytes_setting, plan_timeline


class ThreeDLabsStoryboardTimeline:
    CATEGORY = CATEGORY
    SEARCH_ALIASES = ["storyboard", "timeline", "animatic", "ken burns", "images to frames", "slideshow",
                      "topic to video"]
    DESCRIPTION = ("Turns one image per scene into video frames that last as long as the scene plan says, with an "
                   "optional slow zoom or pan and crossfades, computed locally. Connect frames and fps to "
                   "CreateVideo.")
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING", "STRING", "STRING", "AUDIO")
    RETURN_NAMES = ("frames", "fps", "timeline_text", "srt", "vtt", "audio")
    OUTPUT_TOOLTIPS = (
        "Every frame of the animatic, in order: connect to CreateVideo.",
        "The frame rate the frames were made for: connect to CreateVideo's fps.",
        "Each scene's start, end, duration and frame count, and the total.",
        "The captions as SubRip (.srt) text, timed to the scenes (empty without captions).",
        "The captions as WebVTT (.vtt) text (empty without captions).",
        "The narrations on their scenes and the music, as long as the frames (silence without them): connect "
        "to CreateVideo's audio.",
    )
    FUNCTION = "run"
    INPUT_IS_LIST = True  # a list of caption texts, one per scene, arrives whole

    @classmethod
    def INPUT_TYPES(cls):
        return storyboard_inputs()

    def run(self, images, fps, motion, transition, crossfade_seconds, width, height, seconds_per_scene,
            scene_plan=None, unique_id=None, **captions):
        a = read_inputs({"images": images, "fps": fps, "motion": motion, "transition": transition,
                         "crossfade_seconds": crossfade_seconds, "width": width, "height": height,
                         "seconds_per_scene": seconds_per_scene, "scene_plan": scene_plan, "unique_id": unique_id,
                         **captions})
        images, scene_plan = a["images"], a["scene_plan"]
        durations, labels, note = scene_durations(images, scene_plan, a["seconds_per_scene"])
        clips = scene_clips(a.get("clips"), len(durations), labels, scene_plan)
        durations = retimed_durations(durations, clips, a["fps"], a.get("clip_mode") or MODES[0])
        sound = Sound.from_inputs(a, len(durations), labels, scene_plan)
        durations, lengthened = sound.durations(durations)
        progress = comfy.NodeProgress(a["unique_id"])
        shown = [-1]

        def on_progress(done: int, total: int) -> None:
            comfy.check_interrupt()
            if done * 100 // total != shown[0]:  # one websocket message per percent, not per frame
                shown[0] = done * 100 // total
                progress.update(done / total)

        plan = plan_timeline(durations, a["fps"], a["motion"], a["transition"], a["crossfade_seconds"], labels)
        renderer = TimelineRenderer(images, plan, 1, 1)  # checks the batch against the plan first
        out_h, out_w = frame_size(int(renderer.images.shape[1]), int(renderer.images.shape[2]), a["width"],
                                  a["height"], a.get("size"))
        fit = fit_mode(a.get("fit"), a.get("size"))
        check_memory(plan.total, out_h, out_w, a["fps"], max_bytes_setting())
        subtitles = make_captions(plan, out_h, out_w, scene_plan, a)
        moving = ClipFrames(clips, plan, a.get("clip_mode") or MODES[0], out_h, out_w, fit) if clips else None
        renderer = TimelineRenderer(renderer.images, plan, out_h, out_w, subtitles and subtitles.overlay, fit, moving)
        frames = renderer.render(on_progress=on_progress)
        text = plan.text(out_h, out_w)
        progress.text(text.splitlines()[-1])
        mix = sound.mix(plan)
        audio = mix.as_comfy_audio() if mix is not None else silence(plan)
        text += ("\n" + mix.describe() if mix is not None else "") + note + lengthened
        if subtitles is not None and subtitles.files:
            text += f"\nCaptions: {len(subtitles.cues)} cues" + (", burned in" if subtitles.overlay else "")
        srt, vtt = (subtitles.srt(), subtitles.vtt()) if subtitles is not None else ("", "")
        return {"ui": {"text": [text]}, "result": (frames, float(a["fps"]), text, srt, vtt, audio)}
