"""The Storyboard Video's sound track: ComfyUI AUDIO fitted to the video's exact length.

ComfyUI's AUDIO is ``{"waveform": tensor [B,C,T], "sample_rate": int}``. This module owns reading it
(the first clip of the batch, mono or stereo), its length in samples for a duration in seconds, and
reading any span of it with the part past its end as silence, so the encoder can take it a piece at a
time next to the frames, and a longer track is trimmed, a shorter one padded, without a padded copy.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from .timeline_plan import invalid

LAYOUTS = {1: "mono", 2: "stereo"}


class AudioTrack:
    """A waveform [C,T] at ``sample_rate``, read as exactly ``samples`` samples (trimmed or padded)."""

    def __init__(self, waveform: torch.Tensor, sample_rate: int, duration: Fraction) -> None:
        self.waveform = waveform
        self.sample_rate = sample_rate
        self.channels = int(waveform.shape[0])
        self.layout = LAYOUTS[self.channels]
        self.source_samples = int(waveform.shape[1])
        # Half up, as the frame counts are rounded: the track ends where the last frame ends.
        self.samples = math.floor(duration * sample_rate + Fraction(1, 2))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as contiguous float32 [C, stop - start]; silence past the source's end."""
        stop = min(stop, self.samples)
        out = np.zeros((self.channels, max(0, stop - start)), dtype=np.float32)
        have = min(stop, self.source_samples) - start
        if have > 0:
            part = self.waveform[:, start:start + have].to("cpu", torch.float32)
            out[:, :have] = torch.nan_to_num(part, nan=0.0).numpy()
        return out

    def as_comfy_audio(self) -> dict:
        """The whole fitted track as ComfyUI AUDIO [1,C,samples]: for get_components."""
        return {"waveform": torch.from_numpy(self.read(0, self.samples)).unsqueeze(0),
                "sample_rate": self.sample_rate}

    def describe(self) -> str:
        source = self.source_samples / self.sample_rate
        fitted = self.samples / self.sample_rate
        if self.source_samples > self.samples:
            change = f"trimmed from {source:.2f} s"
        elif self.source_samples < self.samples:
            change = f"padded with {fitted - source:.2f} s of silence"
        else:
            change = "as long as the video"
        return f"Audio: {self.layout}, {self.sample_rate} Hz, {fitted:.2f} s ({change})"


def audio_track(audio, duration: Fraction) -> AudioTrack | None:
    """The AUDIO input fitted to ``duration`` seconds; None when nothing is connected."""
    if audio is None:
        return None
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise invalid(f"the audio input must be ComfyUI AUDIO (waveform and sample_rate), not {type(audio).__name__}")
    waveform = audio["waveform"]
    if not isinstance(waveform, torch.Tensor):
        waveform = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    shape = list(waveform.shape)
    if waveform.ndim == 3:
        waveform = waveform[0]  # a batch of clips: the first is the track, as one video has one
    elif waveform.ndim == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 2 or waveform.shape[0] not in LAYOUTS:
        raise invalid(f"the audio must be mono or stereo, a waveform [batch, channels, samples] with 1 or 2 "
                      f"channels, not shape {shape}")
    try:
        sample_rate = int(audio["sample_rate"])
    except (TypeError, ValueError):
        sample_rate = 0
    if sample_rate <= 0:
        raise invalid(f"the audio's sample_rate must be a positive number, not {audio['sample_rate']!r}")
    return AudioTrack(waveform.detach(), sample_rate, duration)
