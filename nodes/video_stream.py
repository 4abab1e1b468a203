"""The Storyboard Video value: a ComfyUI VIDEO that renders its frames only while it is being saved.

A 5-minute 1080p storyboard is 180 GB as one float32 IMAGE batch, so ``StoryboardVideo`` keeps only the
scene images and the ``TimelinePlan``. ``save_to`` (what ComfyUI's SaveVideo calls) renders a chunk of
frames at a time with ``TimelineRenderer`` on one background thread, turns each chunk into uint8 RGB
exactly as ComfyUI's own VideoFromComponents does ((x * 255).clamp(0, 255), truncated), and hands it to
``video_encode`` while the next chunk renders, so rendering and encoding overlap (torch and PyAV both
release the GIL) and memory stays at two chunks whatever the length. Chunks are small (5 frames at 1080p,
rendered one float frame at a time): the encoder itself (libx264, ~400 MiB at 1080p) is most of the memory.
``get_components`` is the one member that materialises every frame, under the timeline's memory guard.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Generator
from contextlib import closing
from fractions import Fraction

import numpy as np
import torch

from . import comfy
from .api.errors import ValidationError
from .comfy_video import AUTO, VideoInputBase, video_components
from .timeline_plan import TimelinePlan, check_memory, max_bytes_setting
from .timeline_render import TimelineRenderer
from .video_audio import AudioTrack
from .video_encode import Mp4Writer, check_format

CHUNK_FRAMES = 8  # frames handed to the encoder at a time
CHUNK_BYTES = 32 * 1024**2  # ...fewer when 8 uint8 frames would pass this (5 at 1080p)
SCRATCH_BYTES = 32 * 1024**2  # float32 frames rendered at once before their conversion to uint8 (1 at 1080p)
QUEUE_DEPTH = 1  # chunks rendered ahead of the encoder; one more is being encoded
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"  # the container's name as PyAV reports it when reading the file

_END = object()


class _Stopped(Exception):
    """Raised inside the render thread when the encoder side has gone away."""


class StoryboardVideo(VideoInputBase):
    """The frames of ``plan`` from ``images`` at ``width`` x ``height``, with an optional sound track."""

    def __init__(self, images: torch.Tensor, plan: TimelinePlan, height: int, width: int,
                 audio: AudioTrack | None = None, *, chunk_frames: int = CHUNK_FRAMES, overlap: bool = True) -> None:
        # Checks the batch against the plan now rather than at save time; keeps the batch as [B,H,W,C].
        images = TimelineRenderer(images, plan, height, width).images
        self.images, self.plan, self.height, self.width, self.audio = images, plan, int(height), int(width), audio
        frame_bytes = self.height * self.width * 3
        self.chunk_frames = max(1, min(int(chunk_frames), CHUNK_BYTES // frame_bytes))
        self.overlap = overlap

    # --- what the video is, without rendering it -----------------------------------------------------

    @property
    def frame_rate(self) -> Fraction:
        # The decimal the fps prints as (12.5, 23.976), as the planner counts frames with it.
        return Fraction(repr(float(self.plan.fps)))

    def get_frame_count(self) -> int:
        return self.plan.total

    def get_frame_rate(self) -> Fraction:
        return self.frame_rate

    def get_duration(self) -> float:
        return float(self.plan.total / self.frame_rate)

    def get_dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    def get_container_format(self) -> str:
        return MP4_DEMUXER

    def get_stream_source(self) -> io.BytesIO:
        """The encoded MP4 in memory (compressed: megabytes, not the frames' gigabytes)."""
        buffer = io.BytesIO()
        self.save_to(buffer)
        buffer.seek(0)
        return buffer

    # --- frames ----------------------------------------------------------------------------------------

    def get_components(self):
        """Every frame as one IMAGE batch, the fitted sound and the frame rate: guarded like the timeline."""
        h, w = self.height, self.width
        try:
            check_memory(self.plan.total, h, w, self.plan.fps, max_bytes_setting())
        except ValidationError as err:
            raise ValidationError(
                err.detail, summary="3DLabs Storyboard Video cannot hand over all its frames at once.",
                hint=f"{err.hint} Saving the video (SaveVideo) needs no such memory: it renders a few frames "
                     "at a time.",
            ) from None
        with torch.inference_mode():
            frames = TimelineRenderer(self.images, self.plan, h, w).render(
                0, self.plan.total, on_progress=lambda done, total: comfy.check_interrupt())
        audio = self.audio.as_comfy_audio() if self.audio is not None else None
        return video_components(frames, self.frame_rate, audio)

    def encoder_frames(self, start: int = 0, stop: int | None = None, overlap: bool | None = None
                       ) -> Generator[np.ndarray, None, None]:
        """Frames [start, stop) as the encoder gets them: uint8 RGB chunks [n,H,W,3], valid until the next.

        Each chunk's buffer is reused once the next one is asked for: copy it to keep it.
        """
        stop = self.plan.total if stop is None else stop
        spans = [(lo, min(stop, lo + self.chunk_frames)) for lo in range(start, stop, self.chunk_frames)]
        overlap = self.overlap if overlap is None else overlap
        return _threaded_chunks(self, spans) if overlap else _inline_chunks(self, spans)

    # --- saving ------------------------------------------------------------------------------------------

    def save_to(self, path, format=AUTO, codec=AUTO, metadata: dict | None = None) -> None:
        """Write the MP4 (H.264 yuv420p, AAC) to a file name or writable binary file, a chunk at a time."""
        check_format(format, codec)
        total = self.plan.total
        progress = comfy.NodeProgress(comfy.executing_context()[1])  # the saving node's bar (e.g. SaveVideo)
        shown = -1
        # closing(): on an error or Cancel the render thread is stopped and joined here, not whenever the
        # generator happens to be collected.
        with Mp4Writer(path, self.width, self.height, self.frame_rate, metadata, self.audio) as writer, \
                closing(self.encoder_frames()) as chunks:
            for chunk in chunks:
                comfy.check_interrupt()
                writer.write(chunk)
                percent = writer.frames * 100 // total
                if percent != shown:  # one websocket message per percent, not per chunk
                    shown = percent
                    progress.update(writer.frames / total)


def _renderer(video: StoryboardVideo) -> tuple[TimelineRenderer, int]:
    """A renderer of its own for one pass, and how many float frames to render at once."""
    renderer = TimelineRenderer(video.images, video.plan, video.height, video.width)
    frame_bytes = video.height * video.width * 3 * 4
    return renderer, max(1, min(video.chunk_frames, renderer.step, SCRATCH_BYTES // frame_bytes))


def _fill(renderer: TimelineRenderer, scratch: torch.Tensor, lo: int, hi: int, target: torch.Tensor,
          stopped: threading.Event | None = None) -> None:
    """Frames [lo, hi) into the uint8 ``target``, rendered ``len(scratch)`` at a time."""
    def check(done: int, count: int) -> None:
        if stopped is not None and stopped.is_set():
            raise _Stopped()

    step = int(scratch.shape[0])
    for a in range(lo, hi, step):
        b = min(hi, a + step)
        frames = renderer.render(a, b, out=scratch[:b - a], on_progress=check)
        # ComfyUI's conversion, (x * 255).clamp(0, 255).byte(): the file matches CreateVideo's of the
        # same frames. copy_ into uint8 truncates exactly as .byte() does.
        target[a - lo:b - lo].copy_(frames.mul_(255.0).clamp_(0.0, 255.0))


def _buffers(video: StoryboardVideo, scratch_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = video.height, video.width
    return (torch.empty((scratch_frames, h, w, 3), dtype=torch.float32),
            torch.empty((video.chunk_frames, h, w, 3), dtype=torch.uint8))


def _inline_chunks(video: StoryboardVideo, spans: list[tuple[int, int]]) -> Generator[np.ndarray, None, None]:
    """Render then encode, in turn, on the caller's thread (the baseline that overlap is measured against)."""
    with torch.inference_mode():
        renderer, scratch_frames = _renderer(video)
        scratch, chunk = _buffers(video, scratch_frames)
    for lo, hi in spans:
        with torch.inference_mode():
            _fill(renderer, scratch, lo, hi, chunk)
        yield chunk[:hi - lo].numpy()


def _threaded_chunks(video: StoryboardVideo, spans: list[tuple[int, int]]) -> Generator[np.ndarray, None, None]:
    """Chunks rendered on one background thread, up to QUEUE_DEPTH ahead of the consumer.

    Buffers circulate: QUEUE_DEPTH + 1 uint8 chunks exist at most (the one being encoded and those
    queued or being filled), so memory is bounded by construction. An error in the thread is raised
    here; when the consumer stops early (error, Cancel, generator closed) the thread is told and joined.
    """
    ready: queue.Queue = queue.Queue()
    spare: queue.Queue = queue.Queue()
    stopped = threading.Event()
    for _ in range(QUEUE_DEPTH + 1):
        spare.put(None)  # allocated on first use, so a short video makes fewer

    def produce() -> None:
        try:
            with torch.inference_mode():  # as ComfyUI's own node execution: no autograd bookkeeping
                renderer, scratch_frames = _renderer(video)
                scratch = torch.empty((scratch_frames, video.height, video.width, 3), dtype=torch.float32)
                for lo, hi in spans:
                    chunk = spare.get()
                    if stopped.is_set():
                        return
                    if chunk is None:
                        chunk = torch.empty((video.chunk_frames, video.height, video.width, 3), dtype=torch.uint8)
                    _fill(renderer, scratch, lo, hi, chunk, stopped)
                    ready.put((chunk, hi - lo))
            ready.put(_END)
        except _Stopped:
            return
        except BaseException as err:  # noqa: BLE001  handed to the consumer, which raises it
            ready.put(err)

    worker = threading.Thread(target=produce, name="3dlabs-video-render", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            chunk, count = item
            yield chunk[:count].numpy()
            spare.put(chunk)
    finally:
        stopped.set()
        spare.put(None)  # wakes the thread if it waits for a buffer
        worker.join()
