"""Size presets and fits of the storyboard: vertical frames from landscape pictures, cropped or over a
blurred fill, and the frames of workflows saved before these inputs unchanged."""

from __future__ import annotations

import av
import pytest
import torch

from conftest import pack_module

framing = pack_module("nodes.storyboard.framing")
timeline_node = pack_module("nodes.storyboard.timeline_node")
video_node = pack_module("nodes.storyboard.video_node")
errors = pack_module("nodes.api.errors")

BASE = dict(motion="none", transition="cut", crossfade_seconds=0.0, width=0, height=0, seconds_per_scene=0.5)
RED, GREEN, BLUE = (0.9, 0.1, 0.1), (0.1, 0.8, 0.2), (0.1, 0.2, 0.9)


def thirds(height=96, width=168) -> torch.Tensor:
    """A landscape picture: red, green and blue thirds from left to right."""
    picture = torch.empty(1, height, width, 3)
    for k, colour in enumerate((RED, GREEN, BLUE)):
        picture[0, :, k * width // 3:(k + 1) * width // 3] = torch.tensor(colour)
    return picture


def timeline(images, **inputs):
    return timeline_node.ThreeDLabsStoryboardTimeline().run(images, 4.0, **{**BASE, **inputs})["result"][0]


@pytest.mark.parametrize("size", [s for s in framing.SIZES if s != "custom"])
def test_every_preset_makes_frames_of_its_size(size):
    width, height = (int(v) for v in size.split("x"))
    frames = timeline(thirds(24, 42), size=size, fit="stretch")
    assert tuple(frames.shape[1:]) == (height, width, 3)


def test_crop_keeps_the_middle_of_a_landscape_picture_in_a_vertical_frame():
    frames = timeline(thirds(), size="768x1344", fit="crop")
    mean = frames[0].reshape(-1, 3).mean(0)
    assert torch.allclose(mean, torch.tensor(GREEN), atol=0.02), mean  # only the middle third shows


def test_auto_crops_with_a_preset_and_stretches_with_a_custom_size():
    assert torch.equal(timeline(thirds(), size="768x1344"), timeline(thirds(), size="768x1344", fit="crop"))
    custom = timeline(thirds(), width=64, height=96)
    assert torch.equal(custom, timeline(thirds(), width=64, height=96, fit="stretch"))
    assert torch.equal(custom, timeline(thirds(), width=64, height=96, size="custom", fit="auto"))


def test_blurred_fill_shows_the_whole_picture_over_a_darker_blur():
    frames = timeline(thirds(), size="768x1344", fit="blurred fill")
    frame = frames[0]
    inner_h = round(96 * 768 / 168)  # the picture at the frame's width
    top = (1344 - inner_h) // 2
    band, picture = frame[: top - 2], frame[top + 2: top + inner_h - 2]
    # The whole picture: its three thirds side by side, at full brightness.
    for k, colour in enumerate((RED, GREEN, BLUE)):
        part = picture[:, k * 256 + 20:(k + 1) * 256 - 20].reshape(-1, 3).mean(0)
        assert torch.allclose(part, torch.tensor(colour), atol=0.03), (k, part)
    # Above it, the blurred middle: green, darkened.
    assert torch.allclose(band.reshape(-1, 3).mean(0), torch.tensor(GREEN) * framing.FILL_DARKEN, atol=0.05)


def test_moving_frames_with_a_fit_keep_the_frame_shape():
    frames = timeline(thirds(), size="768x1344", fit="crop", motion="slow zoom in")
    assert tuple(frames.shape[1:]) == (1344, 768, 3)
    assert torch.allclose(frames[0].reshape(-1, 3).mean(0), torch.tensor(GREEN), atol=0.1)


def test_a_workflow_saved_before_the_size_inputs_renders_the_same_frames():
    images = torch.rand(2, 40, 60, 3)
    before = timeline_node.ThreeDLabsStoryboardTimeline().run(images, 4.0, "slow zoom out", "crossfade", 0.25, 90, 0,
                                                              0.5)["result"][0]
    after = timeline(images, motion="slow zoom out", transition="crossfade", crossfade_seconds=0.25, width=90,
                     size="custom", fit="auto")
    assert torch.equal(before, after)


@pytest.mark.parametrize(("inputs", "words"), [
    ({"size": "720x1280"}, "The size must be one of custom, 1920x1080"),
    ({"fit": "letterbox"}, "The fit must be one of auto, crop, blurred fill, stretch"),
])
def test_unknown_size_or_fit_is_named(inputs, words):
    with pytest.raises(errors.ValidationError, match=words):
        timeline(thirds(), **inputs)


def test_the_vertical_video_is_saved_at_1080x1920(tmp_path):
    vid = video_node.ThreeDLabsStoryboardVideo().run(thirds(), 4.0, size="1080x1920", fit="blurred fill",
                                                     **BASE)["result"][0]
    assert vid.get_dimensions() == (1080, 1920)
    vid.save_to(str(tmp_path / "vertical.mp4"))
    with av.open(str(tmp_path / "vertical.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1080, 1920)
        assert sum(1 for _ in container.decode(video=0)) == vid.get_frame_count() == 2
