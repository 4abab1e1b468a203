"""Sound of any sample rate at the storyboard's rate, any block at a time.

Each output sample is computed from the source samples around it with a windowed sinc (a Hann window,
``TAPS`` zero crossings each side, the cut-off lowered when the rate goes down, so nothing folds back
as noise). Nothing is carried from one block to the next, so a block gives the same samples however
the track is cut into blocks, and a track is never resampled whole. A looped source wraps around.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TAPS = 16


def resample_block(wave: torch.Tensor, source_rate: int, rate: int, start: int, count: int,
                   loop: bool = False) -> np.ndarray:
    """Samples [start, start + count) of ``wave`` [C, T] at ``rate``, as float32 [C, count].

    Past the source's end: silence, or (``loop``) the source again from its start.
    """
    channels, length = int(wave.shape[0]), int(wave.shape[1])
    out = np.zeros((channels, max(0, count)), dtype=np.float32)
    if count <= 0 or length == 0:
        return out
    if source_rate == rate:
        index = torch.arange(start, start + count)
        if loop:
            index = index % length
        keep = index < length
        if bool(keep.any()):
            out[:, keep.numpy()] = wave[:, index[keep]].to(torch.float32).numpy()
        return out
    ratio = source_rate / rate  # source samples per output sample
    cutoff = min(1.0, rate / source_rate)
    half = math.ceil(TAPS / cutoff)
    position = torch.arange(start, start + count, dtype=torch.float64) * ratio
    floor = torch.floor(position)
    offsets = torch.arange(-half + 1, half + 1, dtype=torch.float64)
    taps = floor[:, None] + offsets[None, :]  # [count, 2 * half] source indices
    distance = position[:, None] - taps
    weight = cutoff * torch.sinc(cutoff * distance) * (0.5 + 0.5 * torch.cos(math.pi * distance / (half + 1)))
    index = taps.to(torch.int64)
    if loop:
        index = index % length
        valid = torch.ones_like(index, dtype=torch.bool)
    else:
        valid = (index >= 0) & (index < length)
        index = index.clamp(0, length - 1)
    weight = torch.where(valid, weight, torch.zeros_like(weight)).to(torch.float32)
    first, last = int(index.min()), int(index.max()) + 1
    source = wave[:, first:last].to(torch.float32)
    mixed = (source[:, index - first] * weight).sum(-1)  # [C, count]
    out[:] = mixed.numpy()
    return out
