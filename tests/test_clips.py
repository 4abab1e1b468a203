"""Clips instead of stills: a scene given an IMAGE batch plays it (held, looped, or the scene retimed), in
scene order, crossfaded like stills, read in place (never copied), in the timeline and the saved video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import pack_module

timeline_node = pack_module("nodes.storyboard.timeline_node")
video_node = pack_module("nodes.storyboard.video_node")
models = pack_module("nodes.api.models")
errors = pack_module("nodes.api.errors")

H, W = 24, 32
BASE = dict(motion="none", transition="cut", crossfade_seconds=0.0, width=0, height=0, seconds_per_scene=1.0)


def stills(count=3):
    return torch.stack([torch.full((H, W, 3), 0.1 + 0.2 * k) for k in range(count)])


def clip(frames=5, offset=0.5):
    """Frame k is a flat grey of offset + k / 100, so each frame of the video says which clip frame it is."""
    return torch.stack([torch.full((H, W, 3), offset + k / 100) for k in range(frames)])


def clip_frames_shown(frames, offset=0.5):
    return [round((float(f[0, 0, 0]) - offset) * 100) for f in frames]


def timeline(clips, fps=10.0, **inputs):
    return timeline_node.ThreeDLabsStoryboardTimeline().run(stills(), fps, clips=clips, **{**BASE, **inputs})


def test_a_clip_shorter_than_its_scene_holds_its_last_frame():
    frames = timeline([None, clip(), None])["result"][0]
    assert frames.shape[0] == 30
    assert torch.equal(frames[:10], stills()[0].expand(10, -1, -1, -1))
    assert clip_frames_shown(frames[10:20]) == [0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    assert torch.equal(frames[20:], stills()[2].expand(10, -1, -1, -1))


def test_a_looped_clip_starts_again():
    frames = timeline([None, clip(), None], clip_mode="loop")["result"][0]
    assert clip_frames_shown(frames[10:20]) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


def test_retimed_scenes_last_as_long_as_their_clips():
    out = timeline([clip(7), None, clip(13, offset=0.3)], clip_mode="retime scene to clip")["result"]
    frames, text = out[0], out[2]
    assert frames.shape[0] == 7 + 10 + 13
    assert clip_frames_shown(frames[:7]) == list(range(7))
    assert clip_frames_shown(frames[17:], offset=0.3) == list(range(13))
    assert "Scene 1: 0.00 s - 0.70 s" in text


def test_clips_crossfade_like_stills():
    frames = timeline([None, clip(), None], transition="crossfade", crossfade_seconds=0.4)["result"][0]
    plain = timeline(None, transition="crossfade", crossfade_seconds=0.4)["result"][0]
    assert torch.equal(frames[:8], plain[:8])  # before the fade: the still
    # Inside the fade (frames 8..11 around the cut at 10): between the still and the clip's first frame.
    for index in range(8, 12):
        value = float(frames[index, 0, 0, 0])
        assert 0.1 - 1e-6 <= value <= 0.5 + 1e-6
    assert float(frames[8, 0, 0, 0]) < float(frames[11, 0, 0, 0])


def test_a_clip_is_not_zoomed_or_panned():
    moving = timeline([None, clip(), None], motion="slow zoom in")["result"][0]
    assert clip_frames_shown(moving[10:15]) == [0, 1, 2, 3, 4]
    assert torch.allclose(moving[12], clip()[2])


def test_clips_of_another_size_are_fitted_to_the_frame():
    big = torch.rand(4, 48, 96, 3)  # 2:1 against the frame's 4:3
    frames = timeline([None, big, None], size="1080x1080", fit="crop")["result"][0]
    assert tuple(frames.shape[1:]) == (1080, 1080, 3)


def test_the_video_plays_the_clips_in_place_without_copying_them():
    clips = [clip(3, 0.2), clip(9, 0.4), clip(5, 0.6)]
    vid = video_node.ThreeDLabsStoryboardVideo().run(stills(), 10.0, clips=clips, **BASE)["result"][0]
    held = vid.finish["clips"].clips
    assert all(held[i].data_ptr() == clips[i].data_ptr() for i in range(3))  # the caller's tensors, by reference
    frames = timeline(clips)["result"][0]
    encoded = np.concatenate([chunk.copy() for chunk in vid.encoder_frames()])
    assert np.array_equal(encoded, (frames * 255).clamp(0, 255).byte().numpy())
    assert len(vid.finish["clips"]._held) <= 1  # at most the held last frame of one scene, never the clip


def test_clips_for_every_planned_scene_follow_the_scene_numbers_of_a_partial_project():
    plan = models.ScenePlan(scenes=[models.Scene(number=n, image_prompt="p", duration=1.0) for n in (1, 2, 3)],
                            image_scenes=[1, 3])
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(stills(2), 10.0, scene_plan=plan,
                                                           clips=[None, clip(), clip(4, 0.3)], **BASE)["result"]
    assert clip_frames_shown(out[0][10:20], offset=0.3) == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize(("clips", "words"), [
    ([clip(), clip()], "2 clips for the 3 scenes"),
    ([None, "video.mp4", None], "Each clip must be an IMAGE batch"),
    ([None, torch.rand(0, H, W, 3), None], "Each clip must be an IMAGE batch"),
])
def test_bad_clips_are_named(clips, words):
    with pytest.raises(errors.ValidationError, match=words):
        timeline(clips)


def test_an_unknown_clip_mode_is_named():
    with pytest.raises(errors.ValidationError, match="The clip_mode must be one of"):
        timeline([None, clip(), None], clip_mode="bounce")
