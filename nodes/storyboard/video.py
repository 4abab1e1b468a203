"""3DLabs Storyboard Video: the Storyboard Timeline as a VIDEO whose frames are rendered while it is saved.

Storyboard Timeline hands every frame over at once, which caps a video at what fits in memory (a 5-minute
1080p storyboard would be 180 GB). This node returns a ``StoryboardVideo`` instead: a ComfyUI VIDEO that
keeps the scene images, the ``TimelinePlan`` and the fitted sound (``AudioTrack``). Its ``save_to``
(SaveVideo) renders a chunk of frames on a background thread while the previous one is encoded (torch and
PyAV release the GIL), so memory stays at two chunks whatever the length; the encoder (libx264, ~400 MiB
at 1080p) is most of it. Frames become uint8 exactly as ComfyUI's VideoFromComponents makes them, and the
file is what SaveVideo writes for a CreateVideo: H.264 yuv420p in MP4, metadata as JSON strings under
``movflags=use_metadata_tags``, AAC sound. Only ``get_components`` holds every frame, under the memory guard.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import closing, suppress
from fractions import Fraction

import numpy as np
import torch

from .. import comfy
from ..api.errors import ValidationError
from .caption_inputs import Captions
from .comfy_video import AUTO, VideoComponents, VideoInputBase
from .timeline import TimelineRenderer
from .timeline_plan import TimelinePlan, check_memory, invalid, max_bytes_setting
from .video_encoding import BT709, encoder_options, tag_srgb

CHUNK_FRAMES = 8  # frames handed to the encoder at a time
# Two chunks are alive at once (one rendering, one encoding). Smaller chunks overlap as well: render
# and encode hand over once per chunk, and a frame takes tens of milliseconds at any size worth a video.
CHUNK_BYTES = 16 * 1024**2  # ...fewer when 8 uint8 frames would pass this (5 at 1280x720, 2 at 1080p)
SCRATCH_BYTES = 16 * 1024**2  # float32 frames rendered at once before their conversion to uint8 (1 at 720p)
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"  # the container's name as PyAV reports it when reading the file
# Sample rates the AAC encoder accepts; any other is resampled to 48 kHz by PyAV on the way in.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
LAYOUTS = {1: "mono", 2: "stereo"}


class AudioTrack:
    """A waveform [C,T] at ``sample_rate``, read as exactly ``samples`` samples: trimmed, or padded with silence."""

    def __init__(self, waveform: torch.Tensor, sample_rate: int, duration: Fraction) -> None:
        self.waveform, self.sample_rate = waveform, sample_rate
        self.layout = LAYOUTS[int(waveform.shape[0])]
        self.source_samples = int(waveform.shape[1])
        # Half up, as the frame counts are rounded: the track ends where the last frame ends.
        self.samples = math.floor(duration * sample_rate + Fraction(1, 2))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as contiguous float32 [C, stop - start]; silence past the source's end."""
        stop = min(stop, self.samples)
        out = np.zeros((self.waveform.shape[0], max(0, stop - start)), dtype=np.float32)
        have = min(stop, self.source_samples) - start
        if have > 0:
            part = self.waveform[:, start:start + have].to("cpu", torch.float32)
            out[:, :have] = torch.nan_to_num(part, nan=0.0).numpy()
        return out

    def frames(self, av, start: int, stop: int, origin: int = 0) -> Iterator:
        """Samples [start, stop) as PyAV frames of about a second (PyAV cuts them for AAC and resamples),
        timed from sample ``origin`` (a trimmed video's first)."""
        for lo in range(start, stop, self.sample_rate):
            frame = av.AudioFrame.from_ndarray(self.read(lo, min(stop, lo + self.sample_rate)), format="fltp",
                                               layout=self.layout)
            frame.sample_rate, frame.time_base = self.sample_rate, Fraction(1, self.sample_rate)
            frame.pts = lo - origin
            yield frame

    def as_comfy_audio(self) -> dict:
        """The whole fitted track as ComfyUI AUDIO [1,C,samples]: for get_components."""
        return {"waveform": torch.from_numpy(self.read(0, self.samples)).unsqueeze(0),
                "sample_rate": self.sample_rate}

    def describe(self) -> str:
        source, fitted = self.source_samples / self.sample_rate, self.samples / self.sample_rate
        if self.source_samples > self.samples:
            change = f"trimmed from {source:.2f} s"
        elif self.source_samples < self.samples:
            change = f"padded with {fitted - source:.2f} s of silence"
        else:
            change = "as long as the video"
        return f"Audio: {self.layout}, {self.sample_rate} Hz, {fitted:.2f} s ({change})"


class StoryboardVideo(VideoInputBase):
    """The frames of ``plan`` from ``images`` at ``width`` x ``height``, with an optional sound track.

    ``window`` is the part of the plan's frames this video is ([start, stop)): all of them, unless it was
    made by :meth:`as_trimmed`, which shares the scene images and the sound instead of copying them.
    """

    def __init__(self, images: torch.Tensor, plan: TimelinePlan, height: int, width: int,
                 audio: AudioTrack | None = None, window: tuple[int, int] | None = None,
                 captions: Captions | None = None, fit: str = "stretch", clips=None) -> None:
        # Checks the batch against the plan now rather than at save time; keeps the batch as [B,H,W,C].
        self.images = TimelineRenderer(images, plan, height, width).images
        self.plan, self.height, self.width, self.audio = plan, int(height), int(width), audio
        self.window = window or (0, plan.total)
        self.captions = captions
        # How each renderer of this video finishes its frames: captions laid over, pictures fitted.
        self.finish = {"overlay": captions.overlay if captions is not None else None, "fit": fit, "clips": clips}
        self.chunk_frames = max(1, min(CHUNK_FRAMES, CHUNK_BYTES // (self.height * self.width * 3)))
        self.overlap = True  # False renders and encodes in turn: the baseline that overlap is measured against

    def get_frame_count(self) -> int:
        return self.window[1] - self.window[0]

    def get_frame_rate(self) -> Fraction:
        # The decimal the fps prints as (12.5, 23.976), as the planner counts frames with it.
        return Fraction(repr(float(self.plan.fps)))

    def get_duration(self) -> float:
        return float(self.get_frame_count() / self.get_frame_rate())

    def get_dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    def get_container_format(self) -> str:
        return MP4_DEMUXER

    def get_bit_depth(self) -> int:
        return 8

    def get_color_space(self) -> str:
        return "sRGB"  # the frames are the scene images' own 8-bit sRGB pixels

    def get_active_trim_window(self) -> tuple[float, float]:
        start, stop = self.window
        if (start, stop) == (0, self.plan.total):
            return 0.0, 0.0
        rate = self.get_frame_rate()
        return float(start / rate), float((stop - start) / rate)

    def as_trimmed(self, start_time: float | None = None, duration: float | None = None,
                   strict_duration: bool = False, **_future) -> StoryboardVideo | None:
        """The part from ``start_time`` (seconds; negative counts from the end) lasting ``duration`` (0 or
        None: to the end), as ComfyUI's trim nodes ask for it. Nothing is rendered or copied: the part shares
        this video's images, plan and sound. None when nothing is left, or (``strict_duration``) when less
        than ``duration`` is."""
        rate, (lo, hi) = self.get_frame_rate(), self.window
        length = Fraction(hi - lo) / rate
        try:
            start = Fraction(start_time or 0.0).limit_denominator(10**6)
            wanted = Fraction(duration or 0.0).limit_denominator(10**6)
        except (TypeError, ValueError, OverflowError):
            raise invalid(f"cannot trim the Storyboard Video at start_time={start_time!r}, duration={duration!r}: "
                          "both must be numbers of seconds") from None
        if start < 0:
            start = max(length + start, Fraction(0))
        if wanted < 0 or start >= length:
            return None
        end = min(length, start + wanted) if wanted else length
        if strict_duration and wanted and end - start < wanted:
            return None
        # Frames whose time lies in [start, end): the first frame at or after each edge.
        first, last = lo + math.ceil(start * rate), lo + math.ceil(end * rate)
        if last <= first:
            return None
        last = min(hi, last)
        captions = self.captions.part(first, last) if self.captions is not None else None
        return StoryboardVideo(self.images, self.plan, self.height, self.width, self.audio, (first, last), captions,
                               self.finish["fit"], self.finish["clips"])

    def get_stream_source(self) -> io.BytesIO:
        """The encoded MP4 in memory (compressed: megabytes, not the frames' gigabytes)."""
        buffer = io.BytesIO()
        self.save_to(buffer)
        buffer.seek(0)
        return buffer

    def _audio_span(self) -> tuple[int, int]:
        """The sound's samples under this video's frames: [first, stop), rounded as the frames are."""
        rate, sample_rate = self.get_frame_rate(), self.audio.sample_rate
        lo, hi = self.window
        return (math.floor(Fraction(lo) / rate * sample_rate + Fraction(1, 2)),
                min(self.audio.samples, math.floor(Fraction(hi) / rate * sample_rate + Fraction(1, 2))))

    def get_components(self):
        """Every frame as one IMAGE batch, the fitted sound and the frame rate: guarded like the timeline."""
        lo, hi = self.window
        try:
            check_memory(hi - lo, self.height, self.width, self.plan.fps, max_bytes_setting())
        except ValidationError as err:
            raise ValidationError(
                err.detail, summary="3DLabs Storyboard Video cannot hand over all its frames at once.",
                hint=f"{err.hint} Saving the video (SaveVideo) needs no such memory: it renders a few frames "
                     "at a time.",
            ) from None
        with torch.inference_mode():
            frames = TimelineRenderer(self.images, self.plan, self.height, self.width, **self.finish).render(
                lo, hi, on_progress=lambda done, total: comfy.check_interrupt())
        audio = None
        if self.audio is not None:
            a, b = self._audio_span()
            audio = {"waveform": torch.from_numpy(self.audio.read(a, b)).unsqueeze(0),
                     "sample_rate": self.audio.sample_rate}
        return VideoComponents(images=frames, frame_rate=self.get_frame_rate(), audio=audio)

    def encoder_frames(self, start: int = 0, stop: int | None = None, overlap: bool | None = None
                       ) -> Iterator[np.ndarray]:
        """Frames [start, stop) as the encoder gets them: uint8 RGB chunks [n,H,W,3], valid until the next.

        With overlap, the next chunk renders on a background thread, into the other of two buffers, while
        the consumer encodes this one. An error there is raised here; when the consumer stops early (error,
        Cancel, generator closed) the render under way stops at its next step and the thread is joined.
        """
        stop = self.plan.total if stop is None else stop
        spans = [(lo, min(stop, lo + self.chunk_frames)) for lo in range(start, stop, self.chunk_frames)]
        overlap = self.overlap if overlap is None else overlap
        h, w = self.height, self.width
        stopped = threading.Event()
        with torch.inference_mode():  # as ComfyUI's own node execution: no autograd bookkeeping
            renderer = TimelineRenderer(self.images, self.plan, h, w, **self.finish)  # its own for this pass
            step = max(1, min(self.chunk_frames, renderer.step, SCRATCH_BYTES // (h * w * 3 * 4)))
            scratch = torch.empty((step, h, w, 3), dtype=torch.float32)
        buffers: dict[int, torch.Tensor] = {}  # made on first use, so a short video makes fewer

        def check(done: int, count: int) -> None:
            if stopped.is_set():
                raise CancelledError()

        def render(index: int) -> np.ndarray:
            lo, hi = spans[index]
            slot = index % 2 if overlap else 0
            with torch.inference_mode():
                if slot not in buffers:
                    buffers[slot] = torch.empty((self.chunk_frames, h, w, 3), dtype=torch.uint8)
                chunk = buffers[slot]
                for a in range(lo, hi, step):
                    b = min(hi, a + step)
                    frames = renderer.render(a, b, out=scratch[:b - a], on_progress=check)
                    # ComfyUI's conversion, (x * 255).clamp(0, 255).byte(): the file matches CreateVideo's of
                    # the same frames. copy_ into uint8 truncates exactly as .byte() does.
                    chunk[a - lo:b - lo].copy_(frames.mul_(255.0).clamp_(0.0, 255.0))
            return chunk[:hi - lo].numpy()

        if not overlap:
            yield from map(render, range(len(spans)))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="3dlabs-video-render") as pool:
            pending = pool.submit(render, 0) if spans else None
            try:
                for index in range(1, len(spans) + 1):
                    chunk = pending.result()
                    if index < len(spans):
                        pending = pool.submit(render, index)
                    yield chunk
            finally:
                stopped.set()  # leaving the pool then joins its thread

    def save_to(self, path, format=AUTO, codec=AUTO, metadata: dict | None = None, bit_depth: int | None = None,
                crf: float | None = None, color_space: str | None = None, preset: str | None = None,
                **_future) -> None:
        """Write the MP4 (H.264 yuv420p, AAC) to a file name or writable binary file, a chunk at a time.

        Today's SaveVideo also passes ``crf``, ``color_space`` and (0.38) ``preset``: honoured for 8-bit
        H.264. 10-bit and HDR are refused (the frames are 8-bit sRGB). Keywords of later cores are ignored.
        """
        options = encoder_options(format, codec, bit_depth, crf, color_space, preset)
        import av  # lazy: 50 ms at import, and only a save needs it (ComfyUI has it loaded already)

        rate, audio, total = self.get_frame_rate(), self.audio, self.get_frame_count()
        lo, hi = self.window
        a_lo, a_hi = self._audio_span() if audio is not None else (0, 0)
        progress = comfy.NodeProgress(comfy.executing_context()[1])  # the saving node's bar (e.g. SaveVideo)
        done, audio_done, shown = 0, a_lo, -1
        # The format is named, not guessed from the file name: a BytesIO has none, and SaveVideo's 'auto'
        # means MP4 for a video made from frames.
        container = av.open(path, mode="w", format="mp4", options={"movflags": "use_metadata_tags"})
        try:
            for key, value in (metadata or {}).items():
                # As ComfyUI's core writes them (JSON even for strings), so its loaders read them back.
                container.metadata[key] = json.dumps(value)
            stream = container.add_stream("h264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.options = options["codec"]
            if options["srgb"]:
                tag_srgb(stream.codec_context)
            if audio is not None:
                sound = container.add_stream("aac", layout=audio.layout,
                                             rate=audio.sample_rate if audio.sample_rate in AAC_RATES else 48000)
            # closing(): on an error or Cancel the render thread is stopped and joined here, not whenever the
            # generator happens to be collected.
            with closing(self.encoder_frames(lo, hi)) as chunks:
                for chunk in chunks:
                    comfy.check_interrupt()
                    for picture in chunk:
                        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                        if options["srgb"]:  # as today's core converts sRGB frames: BT.709, tagged
                            frame = frame.reformat(format="yuv420p", dst_colorspace=BT709)
                            tag_srgb(frame)
                        else:
                            frame = frame.reformat(format="yuv420p")
                        frame.pts, frame.time_base = done, 1 / rate
                        container.mux(stream.encode(frame))
                        done += 1
                    if audio is not None:  # the sound up to where the frames end: the two stay interleaved
                        until = min(a_hi, a_lo + int(Fraction(done) / rate * audio.sample_rate))
                        for piece in audio.frames(av, audio_done, until, origin=a_lo):
                            container.mux(sound.encode(piece))
                        audio_done = until
                    if done * 100 // total != shown:  # one websocket message per percent, not per chunk
                        shown = done * 100 // total
                        progress.update(done / total)
            container.mux(stream.encode(None))
            if audio is not None:
                for piece in audio.frames(av, audio_done, a_hi, origin=a_lo):
                    container.mux(sound.encode(piece))
                container.mux(sound.encode(None))
        except BaseException:
            with suppress(Exception):  # the first error is the one to report
                container.close()
            raise
        container.close()
        if self.captions is not None:  # SaveVideo's file name, with .srt and .vtt
            self.captions.write_beside(path)


AUDIO_TOOLTIP = ("Narration or music for the video. It starts with the first frame and is cut at the last one, "
                 "or continued with silence if it is shorter.")


def audio_track(audio, duration: Fraction) -> AudioTrack | None:
    """ComfyUI AUDIO ({"waveform": [B,C,T], "sample_rate"}), its first clip fitted to ``duration`` seconds."""
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
