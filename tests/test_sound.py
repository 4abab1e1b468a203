"""Sound of the storyboard: narrations that time the scenes and start on them, a music bed (looped, ducked,
faded), any sample rate and channel count mixed a block at a time; checked on real MP4 files with tones of
known onset."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from conftest import pack_module

audio_mix = pack_module("nodes.storyboard.audio_mix")
resample = pack_module("nodes.storyboard.resample")
timeline_node = pack_module("nodes.storyboard.timeline_node")
video_node = pack_module("nodes.storyboard.video_node")
models = pack_module("nodes.api.models")
errors = pack_module("nodes.api.errors")

BASE = dict(motion="none", transition="cut", crossfade_seconds=0.0, width=0, height=0, seconds_per_scene=2.0)


def tone(seconds, freq=440.0, rate=48000, channels=1, amplitude=0.5, batch=1):
    t = torch.arange(round(seconds * rate)) / rate
    wave = amplitude * torch.sin(2 * math.pi * freq * t)
    return {"waveform": wave.repeat(batch, channels, 1), "sample_rate": rate}


def pictures(count=3, height=32, width=48):
    return torch.rand(count, height, width, 3)


def band_energy(samples: np.ndarray, rate: int, freq: float, window: int) -> np.ndarray:
    """The energy at ``freq`` in each window of ``samples`` (mono), by correlation with the tone."""
    t = np.arange(window) / rate
    probe_c, probe_s = np.cos(2 * np.pi * freq * t), np.sin(2 * np.pi * freq * t)
    count = len(samples) // window
    blocks = samples[: count * window].reshape(count, window)
    return np.hypot(blocks @ probe_c, blocks @ probe_s) / window


def decode_audio(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray() for f in container.decode(audio=0)]
        rate = stream.rate
    data = np.concatenate(chunks, axis=1)
    return data.mean(axis=0), rate


def test_each_scene_lasts_as_long_as_its_narration_plus_the_pause():
    narration = [tone(3.0), tone(1.0), tone(0.0)]
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(pictures(), 10.0, narration=narration,
                                                           narration_pause=0.5, **BASE)["result"]
    frames, text, audio = out[0], out[2], out[5]
    assert frames.shape[0] == 35 + 20 + 20  # 3.5 s, then the planned 2 s twice (1.5 s needed < 2 s)
    assert "Scene 1: 0.00 s - 3.50 s" in text and "Lengthened for narration: scene 1: 3.50 s" in text
    assert "scene 2" not in text.split("Lengthened")[-1]
    assert audio["sample_rate"] == 48000 and audio["waveform"].shape == (1, 1, 75 * 4800)


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0])
def test_narrations_start_on_their_scenes_in_the_saved_file_within_one_frame(fps, tmp_path):
    freqs = (500.0, 1300.0, 2900.0)
    # Each tone starts after a known lead-in of silence inside its clip, so the onset is the clip's own.
    narration = []
    for freq in freqs:
        clip = tone(1.2, freq)
        clip["waveform"][..., :4800] = 0.0  # 0.1 s of silence first
        narration.append(clip)
    plan = models.ScenePlan(scenes=[models.Scene(number=n, image_prompt="p", duration=d)
                                    for n, d in ((1, 1.7), (2, 2.3), (3, 1.9))])
    vid, text = video_node.ThreeDLabsStoryboardVideo().run(pictures(), fps, scene_plan=plan, narration=narration,
                                                           **BASE)["result"][:2]
    path = tmp_path / "narrated.mp4"
    vid.save_to(str(path))
    samples, rate = decode_audio(path)
    with av.open(str(path)) as container:
        video_seconds = float(container.streams.video[0].frames / fps)
    # The sound is as long as the video (to one AAC frame of 1024 samples).
    assert abs(len(samples) / rate - video_seconds) <= 1024 / rate + 1e-9, (len(samples) / rate, video_seconds)
    edges = vid.plan.boundaries
    window = rate // 200  # 5 ms
    for scene, freq in enumerate(freqs):
        energy = band_energy(samples, rate, freq, window)
        onset = int(np.argmax(energy > 0.5 * energy.max())) * window / rate
        expected = edges[scene] / fps + 0.1
        assert abs(onset - expected) <= 1 / fps, (scene, onset, expected)


def test_onsets_in_the_mix_are_exact_to_the_sample():
    narration = [tone(0.5, 700.0), tone(0.5, 900.0)]
    vid = video_node.ThreeDLabsStoryboardVideo().run(pictures(2), 24.0, narration=narration, **BASE)["result"][0]
    mix = vid.audio
    samples = mix.read(0, mix.samples)[0]
    starts = [round(edge * 48000 / 24) for edge in vid.plan.boundaries[:-1]]
    assert starts[1] > 0
    for start in starts:
        assert samples[start] == 0.0 and abs(samples[start + 1]) > 0.01  # a sine from 0 on the scene's start
    assert not samples[starts[1] - 1000:starts[1]].any()  # silence before it: the first narration ended


def test_music_loops_is_ducked_under_narration_and_fades():
    music = tone(1.0, 330.0, rate=44100, channels=2, amplitude=0.5)
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(
        pictures(3), 10.0, narration=[tone(1.0, 2000.0), None, None], music=music, music_volume_db=-6.0,
        music_ducking_db=12.0, music_fade_seconds=0.5, narration_pause=0.0, **BASE)["result"]
    audio = out[5]
    wave = audio["waveform"][0].numpy()
    assert wave.shape[0] == 2  # stereo music: a stereo mix
    mono = wave.mean(axis=0)
    level = band_energy(mono, 48000, 330.0, 4800)  # per 0.1 s
    gain = 10 ** (-6 / 20) * 0.5
    # Ducked by 12 dB under the narration of scene 1 (its middle, away from the ramps)...
    ducked, free = level[5:8].mean(), level[35:45].mean()
    # Looped: the 1 s music sounds at full level all through the rest (no silent tail after its first second).
    assert (level[14:-6] > 0.9 * free).all(), level
    assert 20 * math.log10(free / ducked) == pytest.approx(12.0, abs=1.0)
    # ...and at its own volume elsewhere.
    assert free == pytest.approx(gain / 2, rel=0.1)  # a sine's correlation amplitude is half its peak
    # Faded in and out.
    assert level[0] < 0.3 * free and level[-1] < 0.3 * free


def test_resampling_is_the_same_whatever_the_blocks_and_close_to_the_true_signal():
    rate = 22050
    t = torch.arange(rate) / rate
    wave = torch.sin(2 * math.pi * 1000 * t)[None]
    whole = resample.resample_block(wave, rate, 48000, 0, 48000)
    pieces = np.concatenate([resample.resample_block(wave, rate, 48000, lo, min(48000, lo + 777) - lo)
                             for lo in range(0, 48000, 777)], axis=1)
    assert np.array_equal(whole, pieces)
    truth = np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000)
    assert np.abs(whole[0, 2000:-2000] - truth[2000:-2000]).max() < 0.01


def test_going_down_in_rate_does_not_fold_high_tones_back():
    rate = 96000
    t = torch.arange(rate) / rate
    high = torch.sin(2 * math.pi * 30000 * t)[None]  # above 24 kHz: must vanish at 48 kHz, not alias to 18 kHz
    out = resample.resample_block(high, rate, 48000, 0, 48000)[0]
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 0.02


def test_any_channel_count_is_mixed_down_and_mono_stays_mono():
    six = tone(1.0, channels=6)
    mix = audio_mix.AudioMix(audio_mix.Fraction(1), [(0, audio_mix._clips(six, "n", False)[0])])
    assert mix.layout == "stereo" and mix.read(0, 100).shape == (2, 100)
    mono = audio_mix.AudioMix(audio_mix.Fraction(1), [(0, audio_mix._clips(tone(1.0), "n", False)[0])])
    assert mono.layout == "mono"


def test_one_audio_batch_is_one_narration_per_scene_without_its_padding():
    batch = tone(2.0, batch=3)
    batch["waveform"][1, :, 48000:] = 0.0  # the second narration is 1 s, padded to the batch's 2 s
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(pictures(3), 10.0, narration=[batch],
                                                           narration_pause=0.5, **BASE)["result"]
    assert out[0].shape[0] == 25 + 20 + 25  # 2.5, 2 (1.5 needed), 2.5


def test_narrations_for_every_planned_scene_follow_the_scene_numbers_of_a_partial_project():
    plan = models.ScenePlan(scenes=[models.Scene(number=n, image_prompt="p", duration=1.0) for n in (1, 2, 3)],
                            image_scenes=[1, 3])
    narration = [tone(0.5), tone(4.0), tone(2.5)]  # scene 2 has no image: its narration is left out
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(pictures(2), 10.0, scene_plan=plan, narration=narration,
                                                           narration_pause=0.5, **BASE)["result"]
    assert out[0].shape[0] == 10 + 30  # scene 1 as planned, scene 3 for its 2.5 s narration + 0.5 s


def test_wrong_count_and_wrong_kind_are_named_before_any_frame():
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    with pytest.raises(errors.ValidationError, match="2 narrations for the 3 scenes"):
        node.run(pictures(3), 10.0, narration=[tone(1.0), tone(1.0)], **BASE)
    with pytest.raises(errors.ValidationError, match="The music must be ComfyUI AUDIO"):
        node.run(pictures(3), 10.0, music="loud.mp3", **BASE)
    with pytest.raises(errors.ValidationError, match="positive sample_rate"):
        node.run(pictures(3), 10.0, music={"waveform": torch.zeros(1, 1, 10), "sample_rate": 0}, **BASE)
