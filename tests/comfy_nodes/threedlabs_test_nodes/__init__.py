"""Test-only custom nodes, linked in beside the pack by the real-ComfyUI suites where a core lacks its own.

- a trim node calling a VIDEO's ``as_trimmed`` as core "Trim Video" (Video Slice, 0.33 and later) does:
  ComfyUI 0.3.64 has none;
- a WAV loader giving the AUDIO core LoadAudio gives: core LoadAudio needs torchaudio, which a checkout
  may lack (no torchaudio build matches every torch).

- a line splitter (one text to a list of texts, as Scene Plan's narrations output is) and a stand-in
  text-to-speech node (a text to a tone whose length follows the text): run over the list by ComfyUI, it
  gives the list of AUDIO, one per scene, that a real text-to-speech node gives.
- a memory mark: passes a list of IMAGE batches through untouched, and on its way resets the process's
  peak resident memory and writes the resident memory of that moment to a file, so a suite can tell what
  the nodes after it took beyond what the graph already held (the clips, in every copy core nodes made).

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


class ThreeDLabsTestLines:
    CATEGORY = "testing"
    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "", "multiline": True})}}

    def split(self, text):
        return ([line for line in text.splitlines() if line.strip()],)


class ThreeDLabsTestSpeak:
    """0.1 s of silence, then a 600 Hz tone of 0.08 s per character, at 22,050 Hz mono."""

    CATEGORY = "testing"
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "speak"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def speak(self, text):
        rate = 22050
        t = torch.arange(int((0.1 + 0.08 * len(text)) * rate)) / rate
        wave_ = 0.4 * torch.sin(2 * np.pi * 600.0 * t)
        wave_[: int(0.1 * rate)] = 0.0
        return ({"waveform": wave_.reshape(1, 1, -1), "sample_rate": rate},)


class ThreeDLabsTestMemoryMark:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "mark"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "path": ("STRING", {"default": ""})}}

    def mark(self, images, path):
        with open("/proc/self/clear_refs", "w") as f:  # VmHWM restarts from the resident memory of now
            f.write("5")
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        with open(path[0], "w") as f:
            f.write(str(rss))
        return (images,)


NODE_CLASS_MAPPINGS = {
    "ThreeDLabsTestMemoryMark": ThreeDLabsTestMemoryMark,
    "ThreeDLabsTestLines": ThreeDLabsTestLines,
    "ThreeDLabsTestSpeak": ThreeDLabsTestSpeak,
    "ThreeDLabsTestTrimVideo": ThreeDLabsTestTrimVideo,
    "ThreeDLabsTestLoadWav": ThreeDLabsTestLoadWav,
}
