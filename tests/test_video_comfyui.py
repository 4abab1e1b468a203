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
    counts = [int(n) for n in re.findall(r"^Scene \d+: .*, (\d+) frames\)$", text, re.M)]
    durations = [float(d) for d in re.findall(r"^Scene \d+: [0-9.]+ s - [0-9.]+ s \(([0-9.]+) s,", text, re.M)]
    spoken = [0.1 + 0.08 * len(t) + 0.25 for t in NARRATIONS]  # each voice plus the pause
    assert durations == pytest.approx([max(SECONDS, s) for s in spoken], abs=1 / FPS), text  # to a frame
    assert "Lengthened for narration: scene 3" in text
    assert len(video["frames"]) == sum(counts)
    assert abs(video["audio_seconds"] - video["seconds"]) <= Fraction(1024, 44100)
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1).mean(axis=0)
    window = rate // 200
    probe = np.exp(-2j * np.pi * 600.0 * np.arange(window) / rate)
    energy = np.abs(samples[: len(samples) // window * window].reshape(-1, window) @ probe) / window
    starts = np.cumsum([0, *counts[:-1]]) / FPS
    for start in starts:  # each voice's onset within one frame of its scene's start (+ its 0.1 s lead-in)
        lo = int((start + 0.05) * rate) // window
        onset = (lo + int(np.argmax(energy[lo:] > 0.05))) * window / rate
        assert abs(onset - (start + 0.1)) <= 1 / FPS, (start, onset)
    srt, vtt = path.with_suffix(".srt"), path.with_suffix(".vtt")
    assert srt.parent == comfy.base / "output" / "video" and srt.is_file() and vtt.is_file()
    text = srt.read_text(encoding="utf-8")
    assert "The keeper climbs the stairs." in text and "Fog." in text
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")


def test_clips_built_with_core_nodes_play_in_scene_order(comfy):
    """Eight scenes given as clips (RepeatImageBatch then RebatchImages: eight batches of 121 frames, as an
    image-to-video model's clips would come) play each clip's frames in scene order."""
    write_scene_pngs(comfy.base / "input", count=8, size=(160, 90))
    prompt = {f"{k + 1}": {"class_type": "LoadImage", "inputs": {"image": f"long{k}.png"}} for k in range(8)}
    last = "1"
    for k in range(2, 9):
        prompt[f"b{k}"] = {"class_type": "ImageBatch", "inputs": {"image1": [last, 0], "image2": [f"{k}", 0]}}
        last = f"b{k}"
    prompt.update({
        "40": {"class_type": "RepeatImageBatch", "inputs": {"image": [last, 0], "amount": 121}},
        "41": {"class_type": "RebatchImages", "inputs": {"images": ["40", 0], "batch_size": 121}},
        "42": {"class_type": "3DLabsStoryboardVideo", "inputs": {
            "images": [last, 0], "clips": ["41", 0], "clip_mode": "retime scene to clip", "fps": 24.0,
            "motion": "none", "transition": "cut", "crossfade_seconds": 0.0, "width": 0, "height": 0,
            "seconds_per_scene": 1.0}},
        "43": {"class_type": "SaveVideo", "inputs": {"video": ["42", 0], "filename_prefix": "video/clips",
                                                     "format": "auto", "codec": "auto"}},
    })
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=600)
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    frames = read_video(output_file(comfy, entry, "43"))["frames"]
    assert len(frames) == 8 * 121
    sources = [np.asarray(Image.open(comfy.base / "input" / f"long{k}.png").convert("RGB"), dtype=float)
               for k in range(8)]
    for index in range(0, len(frames), 7):
        scene, k = divmod(index, 121)
        expected = (scene * 121 + k) % 8  # clip `scene` is frames scene*121.. of the repeated batch of eight
        errors = [np.abs(frames[index].astype(float) - s).mean() for s in sources]
        assert int(np.argmin(errors)) == expected, (index, errors)


def write_scene_pngs(folder, count=4, size=(1344, 768)):
    """Flux-sized scene images with detail everywhere, so zooms and crossfades change every frame."""
    y, x = np.mgrid[0:size[1], 0:size[0]]
    for k in range(count):
        rgb = np.stack([(x // 3 + 50 * k) % 256, (y // 2 + 30 * k) % 256, ((x + y) // 5 * (k + 1)) % 256], -1)
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"long{k}.png")


def packet_count(path) -> tuple[int, Fraction]:
    """Frames in the file's video stream and its duration, read from the container without decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.size)
        return count, stream.duration * stream.time_base


def test_five_minute_1080p_storyboard_through_save_video_in_bounded_memory(comfy):
    """7,200 frames of 1920x1080 (180 GB as one float32 batch) saved by core SaveVideo, and 10 s trimmed from
    its middle by a trim node and saved too: exact frame counts, peak extra memory of ComfyUI <= 1 GiB."""
    write_scene_pngs(comfy.base / "input")
    prompt = {f"{k + 1}": {"class_type": "LoadImage", "inputs": {"image": f"long{k}.png"}} for k in range(4)}
    prompt.update({
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "6": {"class_type": "ImageBatch", "inputs": {"image1": ["5", 0], "image2": ["3", 0]}},
        "7": {"class_type": "ImageBatch", "inputs": {"image1": ["6", 0], "image2": ["4", 0]}},
        "8": {"class_type": "3DLabsStoryboardVideo", "inputs": {
            "images": ["7", 0], "fps": 24.0, "motion": "slow zoom in", "transition": "crossfade",
            "crossfade_seconds": 0.5, "width": 1920, "height": 1080, "seconds_per_scene": 75.0}},
        "9": {"class_type": "SaveVideo", "inputs": {"video": ["8", 0], "filename_prefix": "video/long",
                                                    "format": "auto", "codec": "auto"}},
        "10": trim_node(comfy, ["8", 0], 145.0, 10.0),
        "11": {"class_type": "SaveVideo", "inputs": {"video": ["10", 0], "filename_prefix": "video/long_middle",
                                                     "format": "auto", "codec": "auto"}},
    })
    pid = comfy.proc.pid
    status = f"/proc/{pid}/status"

    def rss(field: str) -> int:
        line = next(ln for ln in open(status) if ln.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    with open(f"/proc/{pid}/clear_refs", "w") as f:  # the peak so far (startup, earlier tests) is not this one's
        f.write("5")
    before = rss("VmRSS")
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=1500)
    peak = rss("VmHWM") - before
    assert entry["status"]["status_str"] == "success", (messages(entry, "execution_error"), comfy.log()[-3000:])
    frames, seconds = packet_count(output_file(comfy, entry, "9"))
    middle, middle_seconds = packet_count(output_file(comfy, entry, "11"))
    print(f"\nComfyUI {comfy.version}: 5-minute 1080p storyboard: {frames} frames, {float(seconds):.3f} s, peak extra "
          f"{peak / 2**20:.0f} MiB; 10 s from its middle: {middle} frames, {float(middle_seconds):.3f} s")
    assert (frames, seconds) == (7200, 300)
    assert (middle, middle_seconds) == (240, 10)
    assert peak <= 2**30, f"peak extra memory {peak / 2**20:.0f} MiB"
