"""The storyboard's sound: narrations on the scene starts, a music bed under them, and the plain audio
track, mixed a block at a time as the encoder asks for it.

Each narration starts on its scene's first frame. The music is looped or cut to the video's length, at
its own volume, lowered under narration (ducking, with short ramps so it breathes rather than jumps)
and faded in and out. Every source keeps its sample rate and channels; each block is resampled to
``RATE`` (``resample``) and mixed down to stereo, or mono when every source is mono. Nothing is copied
whole: memory is the sources as given and one block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from .resample import resample_block
from .timeline_plan import invalid
from .video import AudioTrack

RATE = 48000
DUCK_RAMP_SECONDS = 0.3


@dataclass(frozen=True)
class Clip:
    """One source of sound: a waveform [C, T] at its rate."""

    wave: torch.Tensor
    rate: int

    @property
    def seconds(self) -> float:
        return int(self.wave.shape[1]) / self.rate


def _clips(audio, what: str, split_batch: bool) -> list[Clip]:
    """The clips of one ComfyUI AUDIO ({"waveform": [B, C, T], "sample_rate"}): each item of a batch, or
    the first (a batch's padding, exact zeros at the end, is no part of a narration)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise invalid(f"the {what} must be ComfyUI AUDIO (waveform and sample_rate), not {type(audio).__name__}")
    wave = audio["waveform"]
    if not isinstance(wave, torch.Tensor):
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    if wave.ndim == 1:
        wave = wave[None, None]
    elif wave.ndim == 2:
        wave = wave[None]
    try:
        rate = int(audio["sample_rate"])
    except (TypeError, ValueError):
        rate = 0
    if wave.ndim != 3 or wave.shape[1] < 1 or rate <= 0:
        raise invalid(f"the {what} must be a waveform [batch, channels, samples] with a positive sample_rate, "
                      f"not shape {list(wave.shape)} at {audio['sample_rate']!r}")
    wave = torch.nan_to_num(wave.detach().to("cpu", torch.float32), nan=0.0)
    items = range(wave.shape[0]) if split_batch else range(min(1, wave.shape[0]))
    out = []
    for item in items:
        clip = wave[item]
        if split_batch and wave.shape[0] > 1:
            sounding = (clip != 0).any(dim=0).nonzero()
            clip = clip[:, : int(sounding.max()) + 1] if len(sounding) else clip[:, :0]
        out.append(Clip(clip, rate))
    return out


def narration_clips(narration, scene_count: int, labels: Sequence, scene_plan=None) -> list[Clip | None] | None:
    """One clip (or None) per storyboard scene from the narration input: a list of AUDIO, one per scene in
    scene order, or one AUDIO batch of them; one per scene of the plan is matched by scene number."""
    if narration is None:
        return None
    items = narration if isinstance(narration, list) else [narration]
    if all(item is None for item in items):
        return None
    # In a list, None is a scene without narration (its place still counts).
    clips = (_clips(items[0], "narration", split_batch=True) if len(items) == 1
             else [None if item is None else _clips(item, "narration", split_batch=False)[0] for item in items])
    if len(clips) == scene_count:
        return list(clips)
    scenes = getattr(scene_plan, "scenes", None) or []
    if len(clips) == len(scenes):
        by_number = {s.number: c for s, c in zip(scenes, clips)}
        return [by_number.get(label) for label in labels]
    raise invalid(f"there are {len(clips)} narrations for the {scene_count} scenes of the storyboard",
                  hint="Give one narration per scene, in scene order (a list of AUDIO, or one AUDIO batch).")


def narrated_durations(durations: Sequence[float], clips: Sequence[Clip | None] | None, pause: float
                       ) -> tuple[list[float], list[str]]:
    """Each scene as long as its narration plus ``pause``, or as planned when that is longer; and a line for
    each scene the narration lengthened."""
    if not clips:
        return list(durations), []
    out, notes = [], []
    for index, (planned, clip) in enumerate(zip(durations, clips)):
        needed = clip.seconds + pause if clip is not None and clip.seconds > 0 else 0.0
        out.append(max(planned, needed))
        if needed > planned:
            notes.append(f"scene {index + 1}: {needed:.2f} s for its narration ({clip.seconds:.2f} s + "
                         f"{pause:g} s pause)")
    return out, notes


class AudioMix(AudioTrack):
    """Narrations from their scenes' starts (in samples at RATE), a music bed and a plain track, mixed per
    block. Reads like AudioTrack: the encoder and get_components take either."""

    def __init__(self, duration: Fraction, narrations: Sequence[tuple[int, Clip]] = (), music: Clip | None = None,
                 track: Clip | None = None, volume_db: float = -18.0, ducking_db: float = 10.0,
                 fade_seconds: float = 2.0) -> None:
        self.sample_rate = RATE
        self.samples = math.floor(duration * RATE + Fraction(1, 2))
        self.source_samples = self.samples
        self.narrations = [(start, clip) for start, clip in narrations if clip is not None]
        self.music, self.track = music, track
        sources = [c for _, c in self.narrations] + [c for c in (music, track) if c is not None]
        self.channels = 2 if any(int(c.wave.shape[0]) > 1 for c in sources) else 1
        self.layout = "stereo" if self.channels == 2 else "mono"
        self.music_gain, self.duck = 10 ** (volume_db / 20), 10 ** (-abs(ducking_db) / 20)
        self.fade = max(0.0, float(fade_seconds)) * RATE
        self.spans = [(start, start + round(clip.seconds * RATE)) for start, clip in self.narrations]

    def _stereo(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] == self.channels:
            return block
        if self.channels == 1:
            return block.mean(axis=0, keepdims=True)
        if block.shape[0] == 1:
            return np.repeat(block, 2, axis=0)
        return np.stack([block[0::2].mean(axis=0), block[1::2].mean(axis=0)])  # more channels: down to two

    def _music_gain(self, start: int, count: int) -> np.ndarray:
        t = np.arange(start, start + count, dtype=np.float64)
        ducked = np.zeros(count)
        ramp = DUCK_RAMP_SECONDS * RATE
        for lo, hi in self.spans:
            if hi + ramp < start or lo - ramp > start + count:
                continue
            distance = np.maximum(np.maximum(lo - t, t - hi), 0.0)
            ducked = np.maximum(ducked, np.clip(1.0 - distance / ramp, 0.0, 1.0))
        gain = self.music_gain * self.duck ** ducked
        if self.fade:
            gain *= np.clip(t / self.fade, 0.0, 1.0) * np.clip((self.samples - t) / self.fade, 0.0, 1.0)
        return gain.astype(np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.samples)
        count = max(0, stop - start)
        out = np.zeros((self.channels, count), dtype=np.float32)
        if count == 0:
            return out
        if self.track is not None:
            out += self._stereo(resample_block(self.track.wave, self.track.rate, RATE, start, count))
        if self.music is not None:
            music = resample_block(self.music.wave, self.music.rate, RATE, start, count, loop=True)
            out += self._stereo(music) * self._music_gain(start, count)
        for (lo, hi), (_, clip) in zip(self.spans, self.narrations):
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                out[:, a - start:b - start] += self._stereo(resample_block(clip.wave, clip.rate, RATE, a - lo, b - a))
        return out

    def describe(self) -> str:
        parts = [f"{len(self.narrations)} narration(s)"] if self.narrations else []
        if self.music is not None:
            fitted = "looped" if self.music.seconds * RATE < self.samples else "cut"
            parts.append(f"music {self.music.seconds:.2f} s ({fitted} to the video)")
        if self.track is not None:
            parts.append(f"audio {self.track.seconds:.2f} s")
        return f"Audio: {self.layout}, {RATE} Hz, {self.samples / RATE:.2f} s: " + ", ".join(parts)


def plain_clip(audio) -> Clip | None:
    """The ``audio`` input (a plain track from the first frame) as a clip: the first of a batch."""
    return None if audio is None else _clips(audio, "audio input", split_batch=False)[0]


def music_clip(music) -> Clip | None:
    return None if music is None else _clips(music, "music", split_batch=False)[0]
