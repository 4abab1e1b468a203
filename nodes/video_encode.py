"""Writing an MP4 a few frames at a time with PyAV: H.264 (yuv420p) video, AAC audio, ComfyUI metadata.

The file is what ComfyUI's own SaveVideo writes for a CreateVideo (H.264 yuv420p in MP4, metadata as
JSON strings under ``movflags=use_metadata_tags``, AAC sound), but frames arrive in chunks of uint8 RGB
and the sound is read span by span beside them, so nothing of the length of the video is ever held.
``av`` is imported when a file is written, not when the pack loads (ComfyUI already has it loaded).
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np

from .comfy_video import AUTO, H264, MP4
from .timeline_plan import invalid
from .video_audio import AudioTrack

# Sample rates the AAC encoder accepts; any other is resampled to 48 kHz by PyAV on the way in.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def check_format(format, codec) -> None:
    """Only what SaveVideo offers for this video: 'auto' or 'mp4', 'auto' or 'h264' (str enums or str)."""
    if str(getattr(format, "value", format)).lower() not in (AUTO, MP4):
        raise invalid(f"the Storyboard Video is saved as MP4 only, not as {format!r}; choose auto or mp4")
    if str(getattr(codec, "value", codec)).lower() not in (AUTO, H264):
        raise invalid(f"the Storyboard Video is encoded as H.264 only, not {codec!r}; choose auto or h264")


class Mp4Writer:
    """An open MP4 with an H.264 stream (and an AAC one with ``audio``); use as a context manager."""

    def __init__(self, path, width: int, height: int, rate: Fraction, metadata: dict | None = None,
                 audio: AudioTrack | None = None) -> None:
        import av  # lazy: 50 ms at import, and only a save needs it

        self._av = av
        # The format is named, not guessed from the file name: a BytesIO has none, and SaveVideo's
        # 'auto' means MP4 for a video made from frames.
        self.container = av.open(path, mode="w", format="mp4", options={"movflags": "use_metadata_tags"})
        try:
            for key, value in (metadata or {}).items():
                # As ComfyUI's core writes them (JSON even for strings), so its loaders read them back.
                self.container.metadata[key] = json.dumps(value)
            self.rate = rate
            self.video = self.container.add_stream("h264", rate=rate)
            self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
            self.audio = audio
            self.audio_stream = None
            self.audio_done = 0
            if audio is not None:
                stream_rate = audio.sample_rate if audio.sample_rate in AAC_RATES else 48000
                self.audio_stream = self.container.add_stream("aac", rate=stream_rate, layout=audio.layout)
            self.frames = 0
        except BaseException:
            self.container.close()
            raise

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.finish()
        else:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001  the first error is the one to report
                pass

    def write(self, rgb: np.ndarray) -> None:
        """Encode uint8 RGB frames [n,H,W,3], then the sound up to where they end (keeps the two interleaved)."""
        av = self._av
        for picture in rgb:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = self.frames
            frame.time_base = 1 / self.rate
            self.container.mux(self.video.encode(frame))
            self.frames += 1
        if self.audio is not None:
            self._write_audio(self._samples_at(self.frames))

    def finish(self) -> None:
        try:
            self.container.mux(self.video.encode(None))
            if self.audio is not None:
                self._write_audio(self.audio.samples)
                self.container.mux(self.audio_stream.encode(None))
        finally:
            self.container.close()

    def _samples_at(self, frames: int) -> int:
        return int(Fraction(frames) / self.rate * self.audio.sample_rate)

    def _write_audio(self, until: int) -> None:
        # Spans of about a second: PyAV cuts them into the encoder's 1024-sample frames (and resamples).
        step = self.audio.sample_rate
        while self.audio_done < until:
            stop = min(until, self.audio_done + step)
            data = self.audio.read(self.audio_done, stop)
            frame = self._av.AudioFrame.from_ndarray(data, format="fltp", layout=self.audio.layout)
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self.audio_done
            frame.time_base = Fraction(1, self.audio.sample_rate)
            self.container.mux(self.audio_stream.encode(frame))
            self.audio_done = stop

