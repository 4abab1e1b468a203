"""Opt-in: 3DLabs Storyboard Video inside a real ComfyUI, saved by core SaveVideo.

Scene images and a sound file are loaded by core LoadImage / LoadAudio; the same prompt runs
Storyboard Timeline and saves its first and last frames losslessly (PNG) and its whole batch through
core CreateVideo + SaveVideo, so the streamed file is checked against both.
"""

from __future__ import annotations

import json
import re
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from comfyui_harness import CHECKOUT_PARAMS, COMFYUI_PATH, SKIP_REASON, ComfyServer, checkout_id, messages
from conftest import PACK_DIR

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)]

FPS, SECONDS, WIDTH, HEIGHT = 6.0, 1.25, 96, 64  # 3 scenes of 7.5 frames: 22.5 -> 23 frames
TEST_NODES = Path(__file__).parent / "comfy_nodes" / "threedlabs_test_nodes"


def write_inputs(folder):
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:72, 0:108]
    for k in range(3):
        rgb = np.stack([(x * 2 + 60 * k) % 256, (y * 3) % 256, np.full_like(x, 80 * k)], -1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"scene{k}.png")
    rate = 44100
    t = np.arange(int(9.0 * rate)) / rate  # longer than the video: it must be trimmed
    samples = (0.3 * np.sin(2 * np.pi * 330 * t) * 32767).astype("<i2")
    with wave.open(str(folder / "narration.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-video")
    write_inputs(base / "input")
    server = ComfyServer(PACK_DIR, base, {"THREEDLABS_USER_DIR": str(base / "threedlabs-user")},
                         checkout=request.param, extra_nodes=(TEST_NODES,))
    try:
        server.wait_ready()
        if "LoadAudio" not in server.get("/object_info/LoadAudio"):  # no torchaudio in this checkout
            wav = str(base / "input" / "narration.wav")
            PROMPT["6"] = {"class_type": "ThreeDLabsTestLoadWav", "inputs": {"path": wav}}
        else:
            PROMPT["6"] = {"class_type": "LoadAudio", "inputs": {"audio": "narration.wav"}}
        yield server
    finally:
        server.stop()


def timing(**extra) -> dict:
    return {"images": ["5", 0], "fps": FPS, "motion": "slow zoom in", "transition": "crossfade",
            "crossfade_seconds": 0.5, "width": WIDTH, "height": HEIGHT, "seconds_per_scene": SECONDS, **extra}


PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "scene0.png"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "scene1.png"}},
    "3": {"class_type": "LoadImage", "inputs": {"image": "scene2.png"}},
    "4": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
    "5": {"class_type": "ImageBatch", "inputs": {"image1": ["4", 0], "image2": ["3", 0]}},
    "6": {"class_type": "LoadAudio", "inputs": {"audio": "narration.wav"}},
    "7": {"class_type": "3DLabsStoryboardVideo", "inputs": timing(audio=["6", 0])},
    "8": {"class_type": "SaveVideo", "inputs": {"video": ["7", 0], "filename_prefix": "video/storyboard",
                                                "format": "auto", "codec": "auto"}},
    "9": {"class_type": "3DLabsStoryboardTimeline", "inputs": timing()},
    "10": {"class_type": "ImageFromBatch", "inputs": {"image": ["9", 0], "batch_index": 0, "length": 1}},
    "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "first"}},
    "12": {"class_type": "ImageFromBatch", "inputs": {"image": ["9", 0], "batch_index": 4095, "length": 1}},
    "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "last"}},
    "14": {"class_type": "CreateVideo", "inputs": {"images": ["9", 0], "fps": FPS}},
    "15": {"class_type": "SaveVideo", "inputs": {"video": ["14", 0], "filename_prefix": "video/core",
                                                 "format": "auto", "codec": "auto"}},
    "16": {"class_type": "PreviewAny", "inputs": {"source": ["7", 1]}},
}


def output_file(comfy, entry, node_id):
    [item] = entry["outputs"][node_id]["images"]
    return comfy.base / "output" / item.get("subfolder", "") / item["filename"]


def read_video(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return {
            "frames": [f.to_ndarray(format="rgb24") for f in container.decode(video=0)],
            "seconds": stream.duration * stream.time_base,
            "audio_seconds": audio.duration * audio.time_base if audio is not None else None,
            "metadata": dict(container.metadata),
        }


def test_storyboard_video_through_core_save_video(comfy):
    info = comfy.get("/object_info")["3DLabsStoryboardVideo"]
    assert info["output"] == ["VIDEO", "STRING", "STRING", "STRING"] and info["category"] == "3DLabs"
    assert "audio" in info["input"]["optional"]

    entry = comfy.history(comfy.queue_prompt(PROMPT), timeout=180)
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])

    ours = read_video(output_file(comfy, entry, "8"))
    core = read_video(output_file(comfy, entry, "15"))
    total = 23  # round_half_up(3 x 1.25 s x 6 fps)
    assert len(ours["frames"]) == total == len(core["frames"])
    assert ours["seconds"] == Fraction(total, 6)
    assert ours["frames"][0].shape == (HEIGHT, WIDTH, 3)
    # Trimmed from 9 s to the video's length, to within one AAC frame.
    assert abs(ours["audio_seconds"] - ours["seconds"]) <= Fraction(1024, 44100)
    assert "prompt" in ours["metadata"] and json.loads(ours["metadata"]["prompt"])["7"]["class_type"] == (
        "3DLabsStoryboardVideo")

    for node_id, decoded in (("11", ours["frames"][0]), ("13", ours["frames"][-1])):
        expected = np.asarray(Image.open(output_file(comfy, entry, node_id)).convert("RGB"), dtype=float)
        error = np.abs(decoded.astype(float) - expected)
        assert error.mean() < 3.0 and error.max() <= 40, (node_id, error.mean(), error.max())
    # The same frames as core CreateVideo + SaveVideo encodes (checked bit for bit outside ComfyUI); the
    # files differ only by the encoder's own run-to-run variation (x264's threads), so compare decoded.
    for a, b in zip(ours["frames"], core["frames"]):
        error = np.abs(a.astype(float) - b.astype(float))
        assert error.mean() < 2.0 and error.max() <= 40, (error.mean(), error.max())

    text = entry["outputs"]["16"]["text"][0]
    assert "Total: 3.83 s, 23 frames at 6 fps" in text and "trimmed" in text


def trim_node(comfy, video, start_time, duration):
    """Core "Trim Video" where the core has it (0.33 and later), else the test-only node doing the same."""
    inputs = {"video": video, "start_time": start_time, "duration": duration, "strict_duration": True}
    if "Video Slice" in comfy.get("/object_info/Video%20Slice"):
        return {"class_type": "Video Slice", "inputs": inputs}
    return {"class_type": "ThreeDLabsTestTrimVideo", "inputs": inputs}


def test_get_video_components_and_a_trim_node(comfy):
    """GetVideoComponents unpacks a short storyboard; a trim of it saves with the trimmed frame count."""
    prompt = {k: v for k, v in PROMPT.items() if k in ("1", "2", "3", "4", "5", "6", "7")}
    prompt.update({
        "20": {"class_type": "GetVideoComponents", "inputs": {"video": ["7", 0]}},
        "21": {"class_type": "GetImageSize", "inputs": {"image": ["20", 0]}},
        "22": {"class_type": "PreviewAny", "inputs": {"source": ["21", 2]}},
        "23": {"class_type": "PreviewAny", "inputs": {"source": ["20", 2]}},
        "24": trim_node(comfy, ["7", 0], 1.0, 2.0),
        "25": {"class_type": "SaveVideo", "inputs": {"video": ["24", 0], "filename_prefix": "video/trimmed",
                                                     "format": "auto", "codec": "auto"}},
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=180)
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    assert entry["outputs"]["22"]["text"][0] == "23"  # every frame, as one IMAGE batch
    assert float(entry["outputs"]["23"]["text"][0]) == FPS
    trimmed = read_video(output_file(comfy, entry, "25"))
    assert len(trimmed["frames"]) == 12 and trimmed["seconds"] == 2  # frames 6..17 of 23, at 6 fps
    assert abs(trimmed["audio_seconds"] - 2) <= Fraction(1024, 44100)


NARRATIONS = ("The keeper climbs the stairs.", "Fog.", "A bell rings far out at sea, and the cat looks up.")


def test_narration_list_captions_and_music_through_save_video(comfy):
    """Scene texts -> a text-to-speech stand-in run per scene by ComfyUI -> a list of AUDIO -> narration: each
    scene lengthened to its voice, the voices on the scene starts, music under them, captions burned in and
    the .srt / .vtt beside the MP4 in ComfyUI's output folder."""
    prompt = {k: v for k, v in PROMPT.items() if k in ("1", "2", "3", "4", "5", "6")}
    prompt.update({
        "30": {"class_type": "ThreeDLabsTestLines", "inputs": {"text": "\n".join(NARRATIONS)}},
        "31": {"class_type": "ThreeDLabsTestSpeak", "inputs": {"text": ["30", 0]}},
        "32": {"class_type": "3DLabsStoryboardVideo", "inputs": timing(
            narration=["31", 0], narration_pause=0.25, music=["6", 0], music_volume_db=-20.0,
            caption_texts=["30", 0], captions="subtitle files and burned in", caption_box=True)},
        "33": {"class_type": "SaveVideo", "inputs": {"video": ["32", 0], "filename_prefix": "video/narrated",
                                                     "format": "auto", "codec": "auto"}},
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=300)
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    path = output_file(comfy, entry, "33")
    video = read_video(path)
    text = entry["outputs"]["32"]["text"][0]
    counts = scene_timing(text)
    durations = [float(d) for d in re.findall(r"^Scene \d+: [0-9.]+ s - [0-9.]+ s \(([0-9.]+) s,", text, re.M)]
    spoken = [0.1 + 0.08 * len(t) + 0.25 for t in NARRATIONS]  # each voice plus the pause
    assert durations == pytest.approx([max(SECONDS, s) for s in spoken], abs=1 / FPS), text  # to a frame
    assert "Lengthened for narration: scene 3" in text
    assert len(video["frames"]) == sum(counts)
    assert abs(video["audio_seconds"] - video["seconds"]) <= Fraction(1024, 44100)
    starts = list(np.cumsum([0, *counts[:-1]]) / FPS)
    for start, onset in zip(starts, voice_onsets(path, starts)):  # within one frame of the start + 0.1 s lead-in
        assert abs(onset - (start + 0.1)) <= 1 / FPS, (start, onset)
    srt, vtt = path.with_suffix(".srt"), path.with_suffix(".vtt")
    assert srt.parent == comfy.base / "output" / "video" and srt.is_file() and vtt.is_file()
    text = srt.read_text(encoding="utf-8")
    assert "The keeper climbs the stairs." in text and "Fog." in text
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")


def scene_batch(prompt: dict, prefix: str, count: int) -> str:
    """LoadImage of each scene PNG and ImageBatch of them all, into ``prompt``: the batch's node id."""
    prompt.update({f"{prefix}{k}": {"class_type": "LoadImage", "inputs": {"image": f"{prefix}{k}.png"}}
                   for k in range(count)})
    last = f"{prefix}0"
    for k in range(1, count):
        prompt[f"{prefix}b{k}"] = {"class_type": "ImageBatch", "inputs": {"image1": [last, 0],
                                                                         "image2": [f"{prefix}{k}", 0]}}
        last = f"{prefix}b{k}"
    return last


def clips_prompt(batch: str, clips: list, prefix: str) -> dict:
    return {
        "42": {"class_type": "3DLabsStoryboardVideo", "inputs": {
            "images": [batch, 0], "clips": clips, "clip_mode": "retime scene to clip", "fps": 24.0,
            "motion": "none", "transition": "cut", "crossfade_seconds": 0.0, "width": 0, "height": 0,
            "seconds_per_scene": 1.0}},
        "43": {"class_type": "SaveVideo", "inputs": {"video": ["42", 0], "filename_prefix": f"video/{prefix}",
                                                     "format": "auto", "codec": "auto"}},
    }


def nearest_sources(comfy, path, prefix: str, count: int, every: int = 7):
    """(frame index, which scene PNG it is nearest to) for every ``every``-th frame of the file, decoded one
    at a time; and the file's frame count."""
    sources = [np.asarray(Image.open(comfy.base / "input" / f"{prefix}{k}.png").convert("RGB"), dtype=np.float32)
               for k in range(count)]
    nearest, total = [], 0
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            total += 1
            if index % every == 0:
                rgb = frame.to_ndarray(format="rgb24").astype(np.float32)
                nearest.append((index, int(np.argmin([float(np.abs(rgb - s).mean()) for s in sources]))))
    return nearest, total


def test_clips_built_with_core_nodes_play_their_frames_in_scene_order(comfy):
    """Eight scenes given as clips (RepeatImageBatch then RebatchImages: eight batches of 121 frames, each
    frame one of eight pictures in turn, as an image-to-video model's clips would come) play each clip's
    frames in order, in scene order."""
    write_scene_pngs(comfy.base / "input", count=8, size=(160, 90), prefix="order")
    prompt = {}
    batch = scene_batch(prompt, "order", 8)
    prompt.update({
        "40": {"class_type": "RepeatImageBatch", "inputs": {"image": [batch, 0], "amount": 121}},
        "41": {"class_type": "RebatchImages", "inputs": {"images": ["40", 0], "batch_size": 121}},
        **clips_prompt(batch, ["41", 0], "clips_order"),
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=600)
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    nearest, total = nearest_sources(comfy, output_file(comfy, entry, "43"), "order", 8)
    assert total == 8 * 121
    for index, source in nearest:
        scene, k = divmod(index, 121)
        assert source == (scene * 121 + k) % 8, (index, source)  # clip `scene` is frames scene*121.. of the batch


def test_full_size_clips_play_in_scene_order_in_bounded_memory(comfy):
    """Eight clips of 121 frames at 1280x720 (10.7 GB as float32), made by RebatchImages (the scene images one
    by one) and RepeatImageBatch run by ComfyUI over that list: the video shows them in scene order, and
    Storyboard Video with SaveVideo takes under 300 MiB beyond what the graph already holds, measured from a
    test node that marks the resident memory just before the storyboard runs."""
    write_scene_pngs(comfy.base / "input", count=8, size=(1280, 720), prefix="clip")
    prompt = {}
    batch = scene_batch(prompt, "clip", 8)
    mark = comfy.base / "clips-mark.txt"
    prompt.update({
        "40": {"class_type": "RebatchImages", "inputs": {"images": [batch, 0], "batch_size": 1}},
        "41": {"class_type": "RepeatImageBatch", "inputs": {"image": ["40", 0], "amount": 121}},
        "44": {"class_type": "ThreeDLabsTestMemoryMark", "inputs": {"images": ["41", 0], "path": str(mark)}},
        **clips_prompt(batch, ["44", 0], "clips_full"),
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=900)
    held = int(mark.read_text())
    peak = peak_rss(comfy) - held
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    nearest, total = nearest_sources(comfy, output_file(comfy, entry, "43"), "clip", 8)
    print(f"\nComfyUI {comfy.version}: 8 clips of 121 frames at 1280x720: {total} frames; ComfyUI held "
          f"{held / 2**30:.1f} GiB before the storyboard, peak extra beyond that {peak / 2**20:.0f} MiB")
    assert total == 8 * 121
    assert [source for _, source in nearest] == [index // 121 for index, _ in nearest]
    assert peak < 300 * 2**20, f"peak extra memory beyond the clips {peak / 2**20:.0f} MiB"


def write_scene_pngs(folder, count=4, size=(1344, 768), prefix="long"):
    """Flux-sized scene images with detail everywhere, so zooms and crossfades change every frame."""
    y, x = np.mgrid[0:size[1], 0:size[0]]
    for k in range(count):
        rgb = np.stack([(x // 3 + 50 * k) % 256, (y // 2 + 30 * k) % 256, ((x + y) // 5 * (k + 1)) % 256], -1)
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"{prefix}{k}.png")


def packet_count(path) -> tuple[int, Fraction]:
    """Frames in the file's video stream and its duration, read from the container without decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.size)
        return count, stream.duration * stream.time_base


def _status(comfy, field: str) -> int:
    with open(f"/proc/{comfy.proc.pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def peak_rss(comfy) -> int:
    return _status(comfy, "VmHWM")


def scene_timing(text: str) -> list[int]:
    """Each scene's frame count, from the timeline text a storyboard node shows."""
    return [int(n) for n in re.findall(r"^Scene \d+: .*, (\d+) frames\)$", text, re.M)]


def voice_onsets(path, starts, lead_in=0.1, hz=600.0) -> list[float]:
    """When each voice (a tone of ``hz`` after ``lead_in`` of silence) begins in the file's decoded audio,
    searched from just after each scene start: in seconds from the file's start."""
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1).mean(axis=0)
    window = rate // 200
    probe = np.exp(-2j * np.pi * hz * np.arange(window) / rate)
    energy = np.abs(samples[: len(samples) // window * window].reshape(-1, window) @ probe) / window
    onsets = []
    for start in starts:
        lo = int((start + lead_in / 2) * rate) // window
        onsets.append((lo + int(np.argmax(energy[lo:] > 0.05))) * window / rate)
    return onsets


def cue_times(text: str) -> list[tuple[int, int]]:
    """(start, end) of every SRT cue, in milliseconds."""
    stamps = re.findall(r"^(\d+):(\d+):(\d+),(\d+) --> (\d+):(\d+):(\d+),(\d+)$", text, re.M)
    ms = [((int(h) * 60 + int(m)) * 60 + int(sec)) * 1000 + int(f)
          for row in stamps for h, m, sec, f in (row[:4], row[4:])]
    return list(zip(ms[::2], ms[1::2]))


SHORT_WORDS = "The keeper's cat climbs the spiral stairs as the fog rolls in, and a bell rings far out at sea. "


def spoken_line(scene: int, chars: int) -> str:
    """A narration of exactly ``chars`` characters (the stand-in voice speaks 0.08 s for each)."""
    return (f"Scene {scene + 1}. " + SHORT_WORDS * 8)[: chars - 1] + "."


def test_five_minute_vertical_short_through_save_video_in_bounded_memory(comfy):
    """The finished short in a real ComfyUI: 12 vertical scenes, 5 minutes of 1080x1920 at 24 fps, a voice per
    scene (a list of AUDIO made per scene by a stand-in text-to-speech node; half the voices lengthen their
    scene from 20 s to 30 s), a music bed looped under them and the narration burned in as captions, saved
    by core SaveVideo with its .srt / .vtt, and 10 s trimmed from its middle and saved too. The file is exact
    to the frame, its audio as long as its video, each voice starts within a frame of its scene, every scene
    start is a cue start to the millisecond, and what the storyboard and SaveVideo take beyond the graph's
    own scene pictures (a test node marks ComfyUI's resident memory just before it) stays <= 1 GiB."""
    write_scene_pngs(comfy.base / "input", count=12, size=(768, 1344), prefix="tall")
    lines = [spoken_line(k, 200 if k % 2 == 0 else 370) for k in range(12)]  # 16.1 s; 29.7 s + 0.3 s pause
    prompt = {}
    last = scene_batch(prompt, "tall", 12)
    mark = comfy.base / "short-mark.txt"
    prompt.update({
        "mark": {"class_type": "ThreeDLabsTestMemoryMark", "inputs": {"images": [last, 0], "path": str(mark)}},
        "m": PROMPT["6"],
        "30": {"class_type": "ThreeDLabsTestLines", "inputs": {"text": "\n".join(lines)}},
        "31": {"class_type": "ThreeDLabsTestSpeak", "inputs": {"text": ["30", 0]}},
        "50": {"class_type": "3DLabsStoryboardVideo", "inputs": {
            "images": ["mark", 0], "fps": 24.0, "motion": "slow zoom in", "transition": "crossfade",
            "crossfade_seconds": 0.5, "width": 0, "height": 0, "seconds_per_scene": 20.0, "size": "1080x1920",
            "fit": "auto", "narration": ["31", 0], "narration_pause": 0.3, "music": ["m", 0],
            "music_volume_db": -20.0, "caption_texts": ["30", 0], "captions": "subtitle files and burned in",
            "caption_box": True}},
        "51": {"class_type": "SaveVideo", "inputs": {"video": ["50", 0], "filename_prefix": "video/short",
                                                     "format": "auto", "codec": "auto"}},
        "52": trim_node(comfy, ["50", 0], 145.0, 10.0),
        "53": {"class_type": "SaveVideo", "inputs": {"video": ["52", 0], "filename_prefix": "video/short_middle",
                                                     "format": "auto", "codec": "auto"}},
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=2400)
    # The graph's own part comes first: twelve LoadImage and the ImageBatch chain, whose eleven growing
    # batches ComfyUI keeps (about 1 GB of scene pictures); the mark just before the storyboard resets the
    # peak, so `peak` is what Storyboard Video and SaveVideo took beyond that. (That reset, and an earlier
    # test's cached outputs freed during this prompt, are why there is no figure for the whole prompt.)
    held = int(mark.read_text())
    peak = peak_rss(comfy) - held
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    path = output_file(comfy, entry, "51")
    text = entry["outputs"]["50"]["text"][0]
    counts = scene_timing(text)
    frames, seconds = packet_count(path)
    middle, middle_seconds = packet_count(output_file(comfy, entry, "53"))
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        audio_seconds, rate = audio.duration * audio.time_base, audio.rate
        size = (container.streams.video[0].width, container.streams.video[0].height)
    starts = [sum(counts[:k]) / 24 for k in range(12)]
    onsets = voice_onsets(path, starts)
    worst = max(abs(o - (s + 0.1)) for o, s in zip(onsets, starts))
    print(f"\nComfyUI {comfy.version}: 5-minute 1080x1920 short, 12 voices, music, captions: {frames} frames, "
          f"{float(seconds):.3f} s, audio {float(audio_seconds):.3f} s, worst voice onset {worst * 1000:.1f} ms, "
          f"ComfyUI held {held / 2**30:.1f} GiB before the storyboard, its peak extra beyond that {peak / 2**20:.0f} "
          f"MiB; 10 s from its middle: {middle} frames, {float(middle_seconds):.3f} s")
    assert counts == [480, 720] * 6, text  # 20 s scenes, and 30 s where the voice and its pause lengthen them
    assert size == (1080, 1920)
    assert (frames, seconds) == (7200, 300)
    assert abs(audio_seconds - seconds) <= Fraction(1024, rate)  # one AAC frame
    assert worst <= 1 / 24, list(zip(starts, onsets))
    assert (middle, middle_seconds) == (240, 10)
    srt, vtt = path.with_suffix(".srt"), path.with_suffix(".vtt")
    cues = cue_times(srt.read_text(encoding="utf-8"))
    assert {round(s * 1000) for s in starts} <= {a for a, _ in cues}, cues
    assert cues[-1][1] == 300_000 and vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    assert peak <= 2**30, f"peak extra memory {peak / 2**20:.0f} MiB"
