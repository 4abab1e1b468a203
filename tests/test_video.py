"""Storyboard Video: the file SaveVideo writes (frames, duration, colours, sound), chunking and memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import PACK_DIR, load_pack, pack_module

timeline = pack_module("nodes.storyboard.timeline")
timeline_node = pack_module("nodes.storyboard.timeline_node")
video = pack_module("nodes.storyboard.video")
video_node = pack_module("nodes.storyboard.video_node")
comfy = pack_module("nodes.comfy")
errors = pack_module("nodes.api.errors")

COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.8, 0.2), (0.15, 0.2, 0.9))
BASE = dict(fps=6.0, motion="none", transition="cut", crossfade_seconds=0.5, width=0, height=0,
            seconds_per_scene=1.5)


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(timeline.MAX_BYTES_ENV, raising=False)


def solid(*colours, height=48, width=64) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.float32)[:, None, None, :].expand(-1, height, width, -1).contiguous()


def patterned(count=3, height=48, width=64) -> torch.Tensor:
    """Scenes with detail, so that zooms and crossfades change every frame."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    scenes = [torch.stack([x, y * (k + 1) / count, (x * y + 0.1 * k) % 1], dim=-1) for k in range(count)]
    return torch.stack(scenes).contiguous()


def make(images=None, audio=None, **over):
    args = {**BASE, **over}
    images = solid(*COLOURS) if images is None else images
    vid, text = video_node.ThreeDLabsStoryboardVideo().run(images=images, audio=audio, **args)["result"][:2]
    frames = timeline_node.ThreeDLabsStoryboardTimeline().run(images=images, **args)["result"][0]
    return vid, text, frames


def as_fed(frames: torch.Tensor) -> np.ndarray:
    """ComfyUI's own conversion of IMAGE frames for its encoder (VideoFromComponents)."""
    return (frames * 255).clamp(0, 255).byte().numpy()


def fed(vid, **kw) -> np.ndarray:
    return np.concatenate([chunk.copy() for chunk in vid.encoder_frames(**kw)])


def probe(path):
    with av.open(path) as container:
        streams = {s.type: s for s in container.streams}
        info = {
            "metadata": dict(container.metadata),
            "video_seconds": streams["video"].duration * streams["video"].time_base,
            "container_seconds": container.duration / av.time_base,
            "audio_seconds": (streams["audio"].duration * streams["audio"].time_base if "audio" in streams
                              else None),
            "audio_rate": streams["audio"].sample_rate if "audio" in streams else None,
            "audio_channels": streams["audio"].channels if "audio" in streams else None,
            "size": (streams["video"].width, streams["video"].height),
        }
        info["frames"] = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return info


def tone(seconds: float, rate=44100, channels=2) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    return {"waveform": wave.expand(1, channels, -1).contiguous(), "sample_rate": rate}


# --- the node -------------------------------------------------------------------------------------


def test_registered_with_the_timelines_inputs_plus_audio():
    pack = load_pack()
    assert pack.NODE_CLASS_MAPPINGS["3DLabsStoryboardVideo"] is video_node.ThreeDLabsStoryboardVideo
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["3DLabsStoryboardVideo"] == "3DLabs Storyboard Video"
    spec = video_node.ThreeDLabsStoryboardVideo.INPUT_TYPES()
    base = timeline_node.ThreeDLabsStoryboardTimeline.INPUT_TYPES()
    assert spec["required"] == base["required"]
    assert spec["optional"]["scene_plan"] == base["optional"]["scene_plan"]
    assert spec["optional"]["audio"][0] == "AUDIO" and spec["optional"]["audio"][1]["tooltip"]
    # srt and vtt appended after the outputs saved workflows link to
    assert video_node.ThreeDLabsStoryboardVideo.RETURN_TYPES == ("VIDEO", "STRING", "STRING", "STRING")
    assert video_node.ThreeDLabsStoryboardVideo.CATEGORY == timeline_node.ThreeDLabsStoryboardTimeline.CATEGORY


def test_text_and_members_without_rendering():
    vid, text, frames = make(seconds_per_scene=1.25, fps=7.5)
    total = round(3 * 1.25 * 7.5)  # 28.125 -> 28
    assert vid.get_frame_count() == total == frames.shape[0]
    assert vid.get_frame_rate() == Fraction(15, 2)
    assert vid.get_duration() == pytest.approx(total / 7.5)
    assert vid.get_dimensions() == (64, 48)
    assert "mp4" in vid.get_container_format().split(",")
    assert text.splitlines()[-1].startswith("Total: 3.73 s, 28 frames at 7.5 fps, 64x48")


def test_odd_size_and_bad_audio_are_refused_with_a_reason():
    with pytest.raises(errors.ValidationError, match="even width and height"):
        make(images=solid(*COLOURS, height=47))
    with pytest.raises(errors.ValidationError, match="mono or stereo"):
        make(audio={"waveform": torch.zeros(1, 6, 100), "sample_rate": 44100})
    with pytest.raises(errors.ValidationError, match="sample_rate"):
        make(audio={"waveform": torch.zeros(1, 1, 100), "sample_rate": 0})


# --- the saved file -------------------------------------------------------------------------------


def test_saved_file_has_exact_frames_duration_and_colours(tmp_path):
    vid, _, frames = make(seconds_per_scene=1.25, fps=6.0)  # 7.5 frames a scene: cumulative rounding
    path = tmp_path / "out.mp4"
    vid.save_to(str(path), format="auto", codec="auto", metadata={"prompt": {"1": {"class_type": "x"}}})
    info = probe(path)
    total = 23  # 22.5 frames, rounded half up as the planner does
    assert len(info["frames"]) == total == frames.shape[0]
    assert info["video_seconds"] == Fraction(total, 6)
    assert info["container_seconds"] == pytest.approx(total / 6, abs=1e-3)
    assert info["size"] == (64, 48) and info["audio_seconds"] is None
    for decoded, expected in ((info["frames"][0], frames[0]), (info["frames"][-1], frames[-1])):
        assert np.abs(decoded.astype(int) - as_fed(expected).astype(int)).max() <= 6  # yuv420p + H.264
    assert json.loads(info["metadata"]["prompt"]) == {"1": {"class_type": "x"}}  # as ComfyUI writes it


def test_moving_crossfaded_frames_match_the_timeline_after_decoding(tmp_path):
    vid, _, frames = make(images=patterned(), motion="slow zoom in", transition="crossfade")
    path = tmp_path / "moving.mp4"
    vid.save_to(path)
    decoded = probe(path)["frames"]
    assert len(decoded) == frames.shape[0] == 27
    for index in (0, len(decoded) // 2, len(decoded) - 1):
        error = np.abs(decoded[index].astype(float) - as_fed(frames[index]).astype(float))
        assert error.mean() < 3.0, index


@pytest.mark.parametrize("chunk_frames", [1, 5, 8, 64])
@pytest.mark.parametrize("overlap", [True, False])
def test_chunked_frames_fed_to_the_encoder_equal_the_timeline_nodes(chunk_frames, overlap):
    images = patterned()
    args = dict(motion="pan left", transition="crossfade", fps=8.0, seconds_per_scene=1.4, width=40, height=32)
    frames = timeline_node.ThreeDLabsStoryboardTimeline().run(images=images, **{**BASE, **args})["result"][0]
    vid = video_node.ThreeDLabsStoryboardVideo().run(images=images, **{**BASE, **args})["result"][0]
    vid.chunk_frames = chunk_frames
    assert np.array_equal(fed(vid, overlap=overlap), as_fed(frames))
    assert np.array_equal(fed(vid, start=9, stop=20, overlap=overlap), as_fed(frames[9:20]))


def test_scene_plan_durations_are_followed(tmp_path):
    models = pack_module("nodes.api.models")
    plan = models.ScenePlan(scenes=[models.Scene(number=1, image_prompt="a", duration=1.0),
                                    models.Scene(number=2, image_prompt="b", duration=2.5),
                                    models.Scene(number=3, image_prompt="c", duration=0.5)])
    vid, text, frames = make(scene_plan=plan)
    assert vid.get_frame_count() == frames.shape[0] == 24 and "Scene 2: 1.00 s - 3.50 s" in text
    vid.save_to(tmp_path / "plan.mp4")
    assert len(probe(tmp_path / "plan.mp4")["frames"]) == 24


def test_formats_save_video_offers(tmp_path):
    vid, _, _ = make(seconds_per_scene=0.5)
    for fmt, codec in (("mp4", "h264"), ("auto", "h264"), ("mp4", "auto")):
        vid.save_to(tmp_path / f"{fmt}-{codec}.mp4", format=fmt, codec=codec)
    with pytest.raises(errors.ValidationError, match="MP4 only"):
        vid.save_to(tmp_path / "x.webm", format="webm")
    with pytest.raises(errors.ValidationError, match="H.264 only"):
        vid.save_to(tmp_path / "x.mp4", codec="vp9")
    source = vid.get_stream_source()  # what ComfyUI reads when it wants the encoded bytes
    assert isinstance(source, io.BytesIO) and len(probe(source)["frames"]) == 9


# --- sound ----------------------------------------------------------------------------------------

AAC_FRAME = 1024  # samples: the AAC encoder's granularity, the tolerance on the track's end


@pytest.mark.parametrize("seconds,channels", [(9.0, 2), (2.0, 1), (4.5, 2)], ids=["longer", "shorter", "equal"])
def test_audio_is_trimmed_or_padded_to_the_video(tmp_path, seconds, channels):
    vid, text, _ = make(audio=tone(seconds, channels=channels))
    path = tmp_path / "sound.mp4"
    vid.save_to(path)
    info = probe(path)
    assert info["video_seconds"] == Fraction(27, 6)
    assert abs(info["audio_seconds"] - info["video_seconds"]) <= Fraction(AAC_FRAME, 44100)
    assert info["audio_rate"] == 44100 and info["audio_channels"] == channels
    assert ("trimmed" in text) == (seconds > 4.5) and ("padded" in text) == (seconds < 4.5)


def test_audio_track_reads_exact_spans_with_silence_after_the_source():
    wave = torch.arange(1, 11, dtype=torch.float32).expand(2, -1)
    track = video.AudioTrack(wave, 4, Fraction(3))  # 12 samples wanted, 10 given
    assert track.samples == 12
    assert track.read(8, 12).tolist() == [[9, 10, 0, 0]] * 2
    assert track.read(0, 99).shape == (2, 12)
    assert track.as_comfy_audio()["waveform"].shape == (1, 2, 12)
    assert video.AudioTrack(wave, 4, Fraction(1)).read(0, 99).shape == (2, 4)  # trimmed


def test_an_unusual_sample_rate_is_resampled_for_aac(tmp_path):
    vid, _, _ = make(audio=tone(5.0, rate=44056, channels=1))
    vid.save_to(tmp_path / "odd-rate.mp4")
    info = probe(tmp_path / "odd-rate.mp4")
    assert info["audio_rate"] == 48000
    assert abs(info["audio_seconds"] - info["video_seconds"]) <= Fraction(2 * AAC_FRAME, 48000)


# --- frames for other nodes -----------------------------------------------------------------------


def test_get_components_under_the_guard_is_the_timeline(monkeypatch):
    vid, _, frames = make(images=patterned(), motion="slow zoom out", audio=tone(1.0))
    monkeypatch.setenv(timeline.MAX_BYTES_ENV, str(frames.numel() * 4))
    parts = vid.get_components()
    assert torch.equal(parts.images, frames) and parts.frame_rate == 6
    assert parts.audio["sample_rate"] == 44100 and parts.audio["waveform"].shape == (1, 2, 4.5 * 44100)


def test_get_components_above_the_guard_says_why_and_what_to_do(monkeypatch, tmp_path):
    vid, _, frames = make()
    monkeypatch.setenv(timeline.MAX_BYTES_ENV, str(frames.numel() * 4 - 1))
    with pytest.raises(errors.ValidationError) as info:
        vid.get_components()
    message = str(info.value)
    assert "27 frames of 64x48" in message and timeline.MAX_BYTES_ENV in message and "SaveVideo" in message
    vid.save_to(tmp_path / "still-saves.mp4")  # the guard is for materialising, not for saving


# --- stopping -------------------------------------------------------------------------------------


def test_cancel_stops_the_save_and_the_render_thread():
    vid, _, _ = make(images=patterned(), motion="slow zoom in", seconds_per_scene=20.0)
    vid.chunk_frames = 2
    before = threading.active_count()
    comfy.set_local_interrupt(True)
    try:
        with pytest.raises(comfy.LocalInterrupted):
            vid.save_to(io.BytesIO())
    finally:
        comfy.set_local_interrupt(False)
    assert threading.active_count() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("3dlabs-video-render")]


def test_a_render_error_reaches_the_saver(monkeypatch):
    vid, _, _ = make()

    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(video.TimelineRenderer, "render", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        vid.save_to(io.BytesIO())
    assert not [t for t in threading.enumerate() if t.name.startswith("3dlabs-video-render")]


# --- memory ---------------------------------------------------------------------------------------

MEMORY_PROBE = """
import resource, sys, av, torch
sys.path.insert(0, {tests!r})
from conftest import pack_module
video = pack_module("nodes.storyboard.video")
video_node = pack_module("nodes.storyboard.video_node")
frames = int(sys.argv[1])
y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
images = torch.stack([torch.stack([x, y, (x + k / 4) % 1], -1) for k in range(4)])
vid = video_node.ThreeDLabsStoryboardVideo().run(images=images, fps=10.0, motion="slow zoom in", transition="crossfade",
    crossfade_seconds=0.5, width=0, height=0, seconds_per_scene=frames / 40)["result"][0]
assert vid.get_frame_count() == frames
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
def high_water():
    line = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
# The process's peak so far (imports, setup) is not the save's: reset the high-water mark first.
open("/proc/self/clear_refs", "w").write("5")
before = rss()
vid.save_to(sys.argv[2])
print(high_water() - before)
"""


def test_memory_does_not_grow_with_the_length(tmp_path):
    """2000 frames of 128x96 (a 295 MB batch) save in what 200 frames need, within a few MB."""
    script = textwrap.dedent(MEMORY_PROBE).format(tests=str(PACK_DIR / "tests"))
    growth = {}
    for frames in (200, 2000):
        proc = subprocess.run([sys.executable, "-c", script, str(frames), str(tmp_path / f"{frames}.mp4")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        growth[frames] = int(proc.stdout.split()[-1])
    batch = 2000 * 96 * 128 * 3 * 4
    print(f"\npeak memory growth while saving: 200 frames {growth[200] / 2**20:.1f} MiB, "
          f"2000 frames {growth[2000] / 2**20:.1f} MiB (the 2000-frame batch would be {batch / 2**20:.0f} MiB)")
    assert growth[2000] - growth[200] < 16 * 2**20
    assert growth[2000] < batch / 4
    assert len(probe(tmp_path / "2000.mp4")["frames"]) == 2000


# --- today's VideoInput: save_to's keywords, trimming, what GetVideoComponents asks -------------------


def encoder_settings(path) -> str:
    """x264's own record of the options it ran with (an SEI string inside the stream)."""
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\x00", start)].decode("ascii", "replace")


def test_save_to_honours_crf_preset_and_srgb(tmp_path):
    vid, _, frames = make(images=patterned(), seconds_per_scene=0.5)
    plain, tuned = tmp_path / "plain.mp4", tmp_path / "tuned.mp4"
    vid.save_to(plain)
    vid.save_to(tuned, format="mp4", codec="h264", metadata=None, bit_depth=8, crf=30, color_space="sRGB",
                preset="ultrafast")
    assert "crf=23.0" in encoder_settings(plain) and "subme=7" in encoder_settings(plain)  # x264's defaults
    assert "crf=30.0" in encoder_settings(tuned) and "subme=0" in encoder_settings(tuned)  # ultrafast
    with av.open(str(tuned)) as container:
        ctx = container.streams.video[0].codec_context
        assert (int(ctx.color_primaries), int(ctx.color_trc), int(ctx.colorspace)) == (1, 13, 1)
    decoded = probe(tuned)["frames"]
    assert len(decoded) == frames.shape[0]
    error = np.abs(decoded[4].astype(float) - as_fed(frames[4]).astype(float))
    assert error.mean() < 4.0  # BT.709 conversion, decoded with its tags
    assert vid.get_bit_depth() == 8 and vid.get_color_space() == "sRGB"


@pytest.mark.parametrize("keywords,match", [
    ({"bit_depth": 10}, "8-bit"),
    ({"color_space": "HDR"}, "HDR"),
    ({"color_space": "HDR PQ"}, "HDR"),
    ({"crf": 80}, "crf"),
    ({"crf": "fast"}, "crf"),
    ({"preset": "warp9"}, "preset"),
])
def test_save_to_refuses_what_8_bit_h264_cannot_be_before_rendering(monkeypatch, keywords, match):
    vid, _, _ = make()
    rendered = []
    monkeypatch.setattr(video.TimelineRenderer, "render", lambda *a, **k: rendered.append(a))
    with pytest.raises(errors.ValidationError, match=match):
        vid.save_to(io.BytesIO(), **keywords)
    assert rendered == []


def test_save_to_accepts_keywords_of_later_cores(tmp_path):
    vid, _, _ = make(seconds_per_scene=0.5)
    vid.save_to(tmp_path / "later.mp4", color_space="auto", crf=None, bit_depth=None, hdr_tone_map="none",
                some_future_flag=True)
    assert len(probe(tmp_path / "later.mp4")["frames"]) == 9


def test_as_trimmed_streams_a_part_without_copying(tmp_path):
    images = patterned()
    args = dict(motion="slow zoom in", transition="crossfade", fps=8.0, seconds_per_scene=2.0)
    vid, _, frames = make(images=images, audio=tone(6.0), **args)  # 48 frames, 6 s
    part = vid.as_trimmed(1.5, 2.0)
    assert part.images is vid.images and part.audio is vid.audio  # shared, not copied
    assert part.window == (12, 28) and part.get_frame_count() == 16 and part.get_duration() == 2.0
    assert part.get_active_trim_window() == (1.5, 2.0) and vid.get_active_trim_window() == (0.0, 0.0)
    assert np.array_equal(fed(part, start=12, stop=28), as_fed(frames[12:28]))
    path = tmp_path / "part.mp4"
    part.save_to(path)
    info = probe(path)
    assert len(info["frames"]) == 16 and info["video_seconds"] == 2
    assert abs(info["audio_seconds"] - 2) <= Fraction(AAC_FRAME, 44100)
    parts = part.get_components()
    assert torch.equal(parts.images, frames[12:28]) and parts.audio["waveform"].shape == (1, 2, 2 * 44100)
    # A trim of a trim counts from the part's own start.
    assert part.as_trimmed(0.5, 1.0).window == (16, 24)


def test_as_trimmed_edges_follow_comfyuis_trim_nodes():
    vid, _, _ = make(fps=8.0, seconds_per_scene=2.0)  # 48 frames, 6 s
    assert vid.as_trimmed(-2.0).window == (32, 48)  # negative: from the end
    assert vid.as_trimmed(0.0, 0.0).window == (0, 48)  # 0: to the end
    assert vid.as_trimmed(5.0, 3.0).window == (40, 48)  # cut at the end...
    assert vid.as_trimmed(5.0, 3.0, strict_duration=True) is None  # ...unless the whole duration is asked for
    assert vid.as_trimmed(6.0, 1.0) is None and vid.as_trimmed(9.0) is None  # nothing left
    assert vid.as_trimmed(None, None).window == (0, 48)
    with pytest.raises(errors.ValidationError, match="numbers of seconds"):
        vid.as_trimmed("soon", 1.0)


def test_storyboard_video_implements_every_abstract_method_of_todays_video_input():
    """Today's VideoInput (ComfyUI 0.33) declares these abstract; a subclass missing one cannot be created."""
    import inspect

    for name in ("get_components", "save_to", "as_trimmed", "get_bit_depth", "get_color_space",
                 "get_active_trim_window", "get_frame_count", "get_frame_rate", "get_duration", "get_dimensions"):
        assert name in video.StoryboardVideo.__dict__, name
    accepted = inspect.signature(video.StoryboardVideo.save_to).parameters
    for keyword in ("format", "codec", "metadata", "bit_depth", "crf", "color_space", "preset"):
        assert keyword in accepted, keyword
