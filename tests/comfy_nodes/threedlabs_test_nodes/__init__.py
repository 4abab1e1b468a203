"""Test-only custom nodes, linked in beside the pack by the real-ComfyUI suites where a core lacks its own.

- a trim node calling a VIDEO's ``as_trimmed`` as core "Trim Video" (Video Slice, 0.33 and later) does:
  ComfyUI 0.3.64 has none;
- a WAV loader giving the AUDIO core LoadAudio gives: core LoadAudio needs torchaudio, which a checkout
  may lack (no torchaudio build matches every torch).

Never shipped with the pack.
"""

import wave

import numpy as np
import torch


class ThreeDLabsTestTrimVideo:
    CATEGORY = "testing"
    RETURN_TYPES = ("VIDEO",)
    FUNCTION = "trim"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO",), "start_time": ("FLOAT", {"default": 0.0, "min": -1e5, "max": 1e5}),
                             "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e5}),
                             "strict_duration": ("BOOLEAN", {"default": False})}}

    def trim(self, video, start_time, duration, strict_duration):
        trimmed = video.as_trimmed(start_time, duration, strict_duration=strict_duration)
        if trimmed is None:
            raise ValueError(f"nothing to trim at start_time={start_time}, duration={duration}")
        return (trimmed,)


class ThreeDLabsTestLoadWav:
    CATEGORY = "testing"
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})}}

    def load(self, path):
        with wave.open(path, "rb") as source:
            channels, rate = source.getnchannels(), source.getframerate()
            samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
        waveform = torch.from_numpy(samples.reshape(-1, channels).T.astype(np.float32) / 32768.0)
        return ({"waveform": waveform.unsqueeze(0), "sample_rate": rate},)


NODE_CLASS_MAPPINGS = {
    "ThreeDLabsTestTrimVideo": ThreeDLabsTestTrimVideo,
    "ThreeDLabsTestLoadWav": ThreeDLabsTestLoadWav,
}
