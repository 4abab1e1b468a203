"""What the storyboard nodes' caption inputs mean: the widgets, where each scene's text comes from, and
the cues, subtitle texts and overlay made of them.

Every caption input is optional and off by default, so a saved workflow renders the frames it did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .caption_render import POSITIONS, CaptionOverlay, CaptionStyle
from .captions import Cue, storyboard_cues, to_srt, to_vtt, within
from .timeline_plan import TimelinePlan, invalid

MODES = ("none", "subtitle files", "subtitle files and burned in")


FILES_TIP = {
    True: "subtitle files: an .srt and a .vtt beside the video when SaveVideo saves it (same name).",
    False: "subtitle files: only the srt and vtt outputs (these frames are saved by another node).",
}


def caption_inputs(video: bool = True) -> dict:
    """The optional caption inputs, in the order they are appended (saved workflows keep their widgets)."""
    return {
        "captions": (list(MODES), {"default": "none", "tooltip": (
            f"none: no captions drawn or written. {FILES_TIP[video]} and burned in: the captions are also drawn "
            "into the frames. The srt and vtt outputs carry the captions whenever there is text.")}),
        "caption_texts": ("STRING", {"forceInput": True, "tooltip": (
            "The caption of each scene: a list of texts, one per scene in scene order, or one text with a "
            "line per scene. Without it, the scene plan's narrations.")}),
        "caption_font_size": ("INT", {"default": 0, "min": 0, "max": 400, "tooltip": (
            "Size of burned-in captions in pixels; 0: a twentieth of the frame's shorter side.")}),
        "caption_position": (list(POSITIONS), {"default": "bottom", "tooltip": (
            "Where burned-in captions sit: near the bottom, in the middle or near the top of the frame.")}),
        "caption_color": ("STRING", {"default": "#FFFFFF", "tooltip": "Text colour: a name or #RRGGBB."}),
        "caption_outline_color": ("STRING", {"default": "#000000", "tooltip": "Outline colour: a name or #RRGGBB."}),
        "caption_outline": ("INT", {"default": 3, "min": 0, "max": 20, "tooltip": "Outline width in pixels."}),
        "caption_box": ("BOOLEAN", {"default": False, "tooltip": "A dark box behind the text."}),
        "caption_max_width": ("FLOAT", {"default": 0.9, "min": 0.2, "max": 1.0, "step": 0.05, "tooltip": (
            "The widest a caption line may be, as a share of the frame's width.")}),
        "caption_font": ("STRING", {"default": "", "tooltip": (
            "A .ttf, .otf or .ttc font file for the burned-in captions (for Chinese, Japanese and other "
            "scripts); empty: Pillow's default font.")}),
    }




def scene_texts(caption_texts, scene_plan, labels) -> list[str] | None:
    """One text per storyboard scene (labels are the plan's scene numbers), or None without any text."""
    if caption_texts is not None:
        texts = [caption_texts] if isinstance(caption_texts, str) else list(caption_texts)
        if not all(isinstance(t, str) for t in texts):
            raise invalid("caption_texts must be text (STRING), one per scene")
        if len(texts) == 1 and len(labels) > 1:
            texts = texts[0].splitlines()
        if len(texts) == len(labels):
            return texts
        scenes = getattr(scene_plan, "scenes", None) or []
        if len(texts) == len(scenes):  # one per scene of the plan, the storyboard showing some of them
            by_number = {s.number: t for s, t in zip(scenes, texts)}
            return [by_number.get(label, "") for label in labels]
        raise invalid(f"there are {len(texts)} caption texts for the {len(labels)} scenes of the storyboard",
                      hint="Give one caption text per scene, in scene order.")
    scenes = getattr(scene_plan, "scenes", None)
    if not scenes:
        return None
    by_number = {}
    for scene in scenes:
        by_number.setdefault(scene.number, scene.narration or "")
    texts = [by_number.get(label, "") for label in labels]
    return texts if any(t.strip() for t in texts) else None


@dataclass
class Captions:
    """The captions of one storyboard: cues in frames, the subtitle texts, and whether they are burned in."""

    cues: list[Cue]
    fps: float
    files: bool
    overlay: CaptionOverlay | None = None
    window: tuple[int, int] = field(default=(0, 0))

    def part(self, first: int, last: int) -> Captions:
        """The captions of frames [first, last) of the same storyboard (a trimmed video)."""
        return Captions(within(self.cues, first, last), self.fps, self.files, self.overlay, (first, last))

    def srt(self) -> str:
        return to_srt(self.cues, self.fps, offset=self.window[0])

    def vtt(self) -> str:
        return to_vtt(self.cues, self.fps, offset=self.window[0])

    def write_beside(self, video_path) -> list[str]:
        """The .srt and .vtt files beside a saved video, when asked for; their paths."""
        if not self.files or not self.cues or not isinstance(video_path, (str, bytes)) and not hasattr(
                video_path, "__fspath__"):
            return []
        stem = os.path.splitext(os.fsdecode(video_path))[0]
        written = []
        for suffix, text in ((".srt", self.srt()), (".vtt", self.vtt())):
            with open(stem + suffix, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            written.append(stem + suffix)
        return written


def make_captions(plan: TimelinePlan, height: int, width: int, scene_plan, options: dict) -> Captions | None:
    """The captions the inputs ask for (``options``: the caption inputs by name), or None for none."""
    mode = options.get("captions") or "none"
    if mode not in MODES:
        raise invalid(f"captions must be one of {', '.join(MODES)}, not {mode!r}")
    texts = scene_texts(options.get("caption_texts"), scene_plan, list(plan.labels))
    if texts is None:
        if mode != "none":
            raise invalid("captions are asked for, but there is no text: the scene plan has no narration and "
                          "nothing is connected to caption_texts")
        return None
    cues = storyboard_cues(texts, plan.boundaries, plan.labels)
    overlay = None
    if mode == MODES[2]:
        style = CaptionStyle(*(options.get(name, default) for name, default in (
            ("caption_font_size", 0), ("caption_position", "bottom"), ("caption_color", "#FFFFFF"),
            ("caption_outline_color", "#000000"), ("caption_outline", 3), ("caption_box", False),
            ("caption_max_width", 0.9), ("caption_font", ""))))
        overlay = CaptionOverlay(cues, style, height, width)
    return Captions(cues, plan.fps, mode != "none", overlay, (0, plan.total))
