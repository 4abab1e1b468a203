"""What the storyboard nodes' sound inputs mean: per-scene narrations that set the scenes' length, a music
bed, and the mix made of them for the frames' plan.

Every sound input is optional; without narration or music the nodes sound exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from .audio_mix import RATE, AudioMix, Clip, music_clip, narrated_durations, narration_clips, plain_clip
from .timeline_plan import TimelinePlan


def sound_inputs() -> dict:
    """The optional sound inputs, appended after those saved workflows know."""
    return {
        "narration": ("AUDIO", {"tooltip": (
            "A voice over each scene: a list of AUDIO, one per scene in scene order (e.g. a text-to-speech node "
            "run over Scene Plan's narrations), or one AUDIO batch. Each scene lasts as long as its narration "
            "plus narration_pause, or as planned when that is longer.")}),
        "narration_pause": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip": (
            "Seconds after each narration before the next scene.")}),
        "music": ("AUDIO", {"tooltip": (
            "A music bed under the whole video: looped or cut to its length, lowered under narration, faded in "
            "and out.")}),
        "music_volume_db": ("FLOAT", {"default": -18.0, "min": -60.0, "max": 12.0, "step": 0.5, "tooltip": (
            "The music's volume in dB (0: as it is; -18: well under a voice).")}),
        "music_ducking_db": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 40.0, "step": 0.5, "tooltip": (
            "How much lower (dB) the music plays while a narration speaks.")}),
        "music_fade_seconds": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip": (
            "The music's fade in at the start and fade out at the end, in seconds.")}),
    }


@dataclass
class Sound:
    """The sound inputs of one run, read and checked before any frame or sample is made."""

    narrations: list[Clip | None] | None
    music: Clip | None
    track: Clip | None
    options: dict

    @classmethod
    def from_inputs(cls, inputs: dict, scene_count: int, labels, scene_plan) -> Sound:
        narrations = narration_clips(inputs.get("narration"), scene_count, labels, scene_plan)
        music = music_clip(inputs.get("music"))
        track = plain_clip(inputs.get("audio")) if (narrations or music) else None
        return cls(narrations, music, track, inputs)

    @property
    def mixed(self) -> bool:
        return bool(self.narrations) or self.music is not None

    def durations(self, planned) -> tuple[list[float], str]:
        """The scenes' durations with the narrations in, and the lines of the timeline text saying so."""
        pause = float(self.options.get("narration_pause", 0.5) or 0.0)
        durations, notes = narrated_durations(planned, self.narrations, pause)
        return durations, "".join(f"\nLengthened for narration: {line}." for line in notes)

    def mix(self, plan: TimelinePlan) -> AudioMix | None:
        """The mix under the plan's frames, each narration on its scene's first frame; None without any."""
        if not self.mixed:
            return None
        rate = Fraction(repr(float(plan.fps)))
        starts = [int(Fraction(frame) / rate * RATE + Fraction(1, 2)) for frame in plan.boundaries[:-1]]
        narrations = list(zip(starts, self.narrations or []))
        o = self.options
        return AudioMix(Fraction(plan.total) / rate, narrations, self.music, self.track,
                        volume_db=float(o.get("music_volume_db", -18.0)),
                        ducking_db=float(o.get("music_ducking_db", 10.0)),
                        fade_seconds=float(o.get("music_fade_seconds", 2.0)))


def silence(plan: TimelinePlan) -> dict:
    """ComfyUI AUDIO of silence as long as the plan's frames (an output that is always connectable)."""
    samples = int(Fraction(plan.total) / Fraction(repr(float(plan.fps))) * RATE + Fraction(1, 2))
    return {"waveform": torch.zeros((1, 1, samples)), "sample_rate": RATE}
