"""Storyboard Timeline: frame counts, crossfades, Ken Burns moves and the memory guard, on real tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import PACK_DIR, pack_module

timeline = pack_module("nodes.storyboard.timeline")
timeline_node = pack_module("nodes.storyboard.timeline_node")
errors = pack_module("nodes.api.errors")
models = pack_module("nodes.api.models")


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(timeline.MAX_BYTES_ENV, raising=False)


def solid(*colours, height=24, width=40) -> torch.Tensor:
    """A batch with one flat RGB colour per image."""
    return torch.tensor(colours, dtype=torch.float32)[:, None, None, :].expand(-1, height, width, -1).contiguous()


def scenes_of(frames: torch.Tensor, counts) -> list[torch.Tensor]:
    return list(torch.split(frames, list(counts)))


def square_image(height=96, width=160, side=24) -> torch.Tensor:
    """A dark picture with a bright square in the middle."""
    image = torch.full((1, height, width, 3), 0.1)
    top, left = (height - side) // 2, (width - side) // 2
    image[:, top:top + side, left:left + side, :] = 0.9
    return image


def marker_image(height=64, width=160, column=80) -> torch.Tensor:
    """A dark picture with a bright vertical bar, two pixels wide."""
    image = torch.full((1, height, width, 3), 0.1)
    image[:, :, column:column + 2, :] = 0.9
    return image


def bright_width(frame: torch.Tensor) -> float:
    """Sub-pixel width of the bright region along the centre row (intensity above the background)."""
    row = frame[frame.shape[0] // 2, :, 0]
    return float(((row - 0.1) / 0.8).clamp(min=0).sum())


def marker_x(frame: torch.Tensor) -> float:
    """Intensity-weighted column of the bright bar."""
    row = (frame[frame.shape[0] // 2, :, 0] - 0.1).clamp(min=0)
    return float((row * torch.arange(row.numel())).sum() / row.sum())


# --- frame counts ---------------------------------------------------------------------------------


def test_frame_counts_follow_durations_and_total():
    assert timeline.frame_counts([4.5, 5, 3.25], 12) == [54, 60, 39]
    assert sum(timeline.frame_counts([4.5, 5, 3.25], 12)) == round(12.75 * 12) == 153
    assert timeline.frame_counts([5, 5], 24) == [120, 120]


def test_rounding_is_carried_so_the_total_matches_the_plan():
    thirds = [1 / 3, 1 / 3, 1 / 3]
    counts = timeline.frame_counts(thirds, 10)
    assert counts == [3, 4, 3]  # boundaries at 3.33 -> 3, 6.67 -> 7, 10 -> 10
    assert sum(counts) == round(sum(thirds) * 10) == 10
    # Seven scenes of 0.7 s at 12 fps: each alone is 8.4 frames; the total is still round(58.8) = 59.
    counts = timeline.frame_counts([0.7] * 7, 12)
    assert sum(counts) == 59 and set(counts) == {8, 9}


def test_halves_round_up_as_the_decimals_read():
    # Python's round() would give 2 for 2.5 (to even); the rule is half up, on the decimal value.
    assert timeline.frame_counts([0.25, 0.25], 10) == [3, 2]
    assert timeline.frame_counts([0.15], 10) == [2]  # 0.15 as typed, not the float just below it


def test_a_scene_too_short_for_one_frame_is_an_error():
    with pytest.raises(errors.ValidationError, match="Scene 2 lasts 0.02 s"):
        timeline.frame_counts([1.0, 0.02, 1.0], 12)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_durations_must_be_positive_and_finite(bad):
    with pytest.raises(errors.ValidationError):
        timeline.frame_counts([1.0, bad], 12)


def test_render_gives_each_scene_its_frames_and_its_image():
    images = solid((1, 0, 0), (0, 1, 0), (0, 0, 1))
    frames, text = timeline.render_timeline(images, [4.5, 5, 3.25], 12, "none", "cut", 0.5, 0, 0, None)
    assert frames.shape == (153, 24, 40, 3) and frames.dtype == torch.float32 and frames.is_contiguous()
    for index, part in enumerate(scenes_of(frames, [54, 60, 39])):
        assert torch.equal(part, images[index].expand_as(part))
    assert text.splitlines()[0] == "Scene 1: 0.00 s - 4.50 s (4.50 s, 54 frames)"
    assert text.splitlines()[2] == "Scene 3: 9.50 s - 12.75 s (3.25 s, 39 frames)"
    assert text.splitlines()[3].startswith("Total: 12.75 s, 153 frames at 12 fps, 40x24")


def test_render_does_not_touch_the_input_batch():
    images = torch.rand(2, 16, 16, 3) * 1.4 - 0.2  # out of range on purpose: the output is clamped
    before = images.clone()
    for motion in timeline.MOTIONS:
        frames, _ = timeline.render_timeline(images, [1, 1], 10, motion, "crossfade", 0.3, 24, 0, None)
        assert torch.equal(images, before)
        assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0, motion


def test_durations_must_match_the_images():
    with pytest.raises(errors.ValidationError, match="There are 2 images but 3 durations"):
        timeline.render_timeline(solid((0, 0, 0), (1, 1, 1)), [1, 1, 1], 12)


# --- crossfade ------------------------------------------------------------------------------------


def test_crossfade_frames_are_the_weighted_mix_and_the_length_is_unchanged():
    a, b = torch.rand(2, 20, 30, 3).unbind(0)
    images = torch.stack([a, b])
    frames, _ = timeline.render_timeline(images, [1, 1], 10, "none", "crossfade", 0.4, 0, 0, None)
    assert frames.shape[0] == 20
    # 0.4 s at 10 fps: 4 frames, from 2 before the cut at frame 10, weights 1/5 .. 4/5.
    for i, frame in enumerate(range(8, 12)):
        w = (i + 1) / 5
        torch.testing.assert_close(frames[frame], (1 - w) * a + w * b, atol=1e-6, rtol=0)
    assert all(torch.equal(frames[f], a) for f in range(8))
    assert all(torch.equal(frames[f], b) for f in range(12, 20))


def test_crossfade_is_limited_by_the_shorter_scene():
    assert timeline.crossfade_lengths([12, 3, 12], 1.0, 12) == [3, 3]
    assert timeline.crossfade_lengths([12, 12], 0.0, 12) == [0]
    images = solid((0, 0, 0), (1, 1, 1), (0, 0, 0), height=4, width=4)
    frames, _ = timeline.render_timeline(images, [1, 0.25, 1], 12, "none", "crossfade", 1.0, 0, 0, None)
    # Scene 2 has 3 frames; the fades in and out of it use 3 frames each and never overlap.
    levels = [round(float(f[0, 0, 0]), 4) for f in frames]
    assert len(levels) == 27
    assert levels[11:17] == [0.25, 0.5, 0.75, 0.75, 0.5, 0.25]


def test_cut_has_no_mixed_frames():
    images = solid((0, 0, 0), (1, 1, 1), height=4, width=4)
    frames, _ = timeline.render_timeline(images, [1, 1], 12, "none", "cut", 2.0, 0, 0, None)
    assert set(frames[:, 0, 0, 0].tolist()) == {0.0, 1.0}


# --- motion ---------------------------------------------------------------------------------------


def test_zoom_in_keeps_the_size_and_grows_steadily():
    frames, _ = timeline.render_timeline(square_image(), [2], 12, "slow zoom in", "cut", 0, 0, 0, None)
    assert frames.shape == (24, 96, 160, 3)
    widths = [bright_width(f) for f in frames]
    assert all(later > earlier for earlier, later in zip(widths, widths[1:]))
    assert widths[0] == pytest.approx(24, abs=0.01)
    assert widths[-1] == pytest.approx(24 * timeline.KEN_BURNS_ZOOM, rel=0.01)  # bilinear ramps: not exact


def test_zoom_out_shrinks_steadily():
    frames, _ = timeline.render_timeline(square_image(), [2], 12, "slow zoom out", "cut", 0, 0, 0, None)
    widths = [bright_width(f) for f in frames]
    assert all(later < earlier for earlier, later in zip(widths, widths[1:]))
    assert widths[-1] == pytest.approx(24, abs=0.01)


@pytest.mark.parametrize("motion, direction", [("pan left", 1), ("pan right", -1)])
def test_pans_move_the_picture_steadily(motion, direction):
    # Pan left: the view travels left across the picture, so the picture's content slides right.
    frames, _ = timeline.render_timeline(marker_image(), [2], 12, motion, "cut", 0, 0, 0, None)
    assert frames.shape == (24, 64, 160, 3)
    xs = [marker_x(f) for f in frames]
    steps = [direction * (later - earlier) for earlier, later in zip(xs, xs[1:])]
    assert all(step > 0 for step in steps)
    # The view crosses the whole picture: the bar moves by the width the 1.15x view leaves over.
    assert direction * (xs[-1] - xs[0]) == pytest.approx(160 * (timeline.KEN_BURNS_ZOOM - 1), rel=0.02)


@pytest.mark.parametrize("motion", ["slow zoom in", "pan left"])
def test_motion_frames_match_grid_sample(motion):
    image = torch.rand(1, 40, 56, 3)
    frames, _ = timeline.render_timeline(image, [1], 8, motion, "cut", 0, 0, 0, None)
    for index in (0, 3, 7):
        scale, centre = timeline.motion_window(motion, index / 7)
        theta = torch.tensor([[[1 / scale, 0, centre], [0, 1 / scale, 0]]], dtype=torch.float32)
        grid = F.affine_grid(theta, (1, 3, 40, 56), align_corners=False)
        expected = F.grid_sample(image.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border",
                                 align_corners=False)[0].permute(1, 2, 0)
        torch.testing.assert_close(frames[index], expected, atol=2e-5, rtol=0)


def test_motion_with_crossfade_blends_and_keeps_moving():
    images = torch.cat([square_image(), square_image() * 0 + 0.5])
    frames, _ = timeline.render_timeline(images, [1, 1], 12, "slow zoom in", "crossfade", 0.5, 0, 0, None)
    assert frames.shape[0] == 24
    # Window of 6 frames from frame 9: the grey scene's weight rises, so the square fades steadily.
    contrast = [float(f[48, 80, 0] - f[5, 5, 0]) for f in frames[8:16]]
    assert all(later < earlier for earlier, later in zip(contrast, contrast[1:]))
    assert all(torch.allclose(f, torch.full_like(f, 0.5)) for f in frames[15:])


# --- size -----------------------------------------------------------------------------------------


def test_width_and_height_set_the_size():
    images = torch.rand(2, 48, 64, 3)
    frames, text = timeline.render_timeline(images, [0.5, 0.5], 12, "none", "cut", 0, 32, 16, None)
    assert frames.shape == (12, 16, 32, 3)
    expected = F.interpolate(images.permute(0, 3, 1, 2), size=(16, 32), mode="bilinear", align_corners=False,
                             antialias=True).permute(0, 2, 3, 1).clamp(0, 1)
    torch.testing.assert_close(frames[0], expected[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(frames[11], expected[1], atol=1e-6, rtol=0)
    assert "32x16" in text
    moving, _ = timeline.render_timeline(images, [0.5, 0.5], 12, "slow zoom in", "cut", 0, 32, 16, None)
    assert moving.shape == (12, 16, 32, 3)


def test_one_side_keeps_the_aspect():
    assert timeline.output_size(768, 1344, 672, 0) == (384, 672)
    assert timeline.output_size(768, 1344, 0, 384) == (384, 672)
    assert timeline.output_size(768, 1344, 1000, 0) == (572, 1000)  # 571.4 -> even 572
    assert timeline.output_size(768, 1344, 0, 0) == (768, 1344)
    frames, _ = timeline.render_timeline(torch.rand(1, 48, 64, 3), [0.25], 4, "pan right", "cut", 0, 0, 24, None)
    assert frames.shape == (1, 24, 32, 3)


# --- memory ---------------------------------------------------------------------------------------


@pytest.fixture
def no_allocation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("allocated before the memory check")

    monkeypatch.setattr(torch, "empty", refuse)
    monkeypatch.setattr(np, "empty", refuse)


def test_oversize_stops_before_allocating(no_allocation):
    tiny = torch.rand(1, 8, 8, 3)
    with pytest.raises(errors.ValidationError) as info:
        timeline.render_timeline(tiny, [300], 60, "none", "cut", 0, 1344, 768, None)  # the longest plan
    message = str(info.value)
    assert "18000 frames of 1344x768" in message
    assert f"{18000 * 1344 * 768 * 12 / 1024**3:.2f} GiB" in message
    assert "4.00 GiB" in message and "fps" in message and "width/height" in message


def test_the_limit_comes_from_the_environment(monkeypatch, no_allocation):
    monkeypatch.setenv(timeline.MAX_BYTES_ENV, str(1024 * 1024))
    images = torch.rand(1, 64, 64, 3)  # 48 KiB a frame: 22 frames fit in 1 MiB, 24 do not
    with pytest.raises(errors.ValidationError, match="24 frames of 64x64"):
        timeline_node.ThreeDLabsStoryboardTimeline().run(images, 12, "none", "cut", 0.5, 0, 0, 2.0)


def test_the_estimate_is_frames_times_pixels_times_twelve():
    assert timeline.estimate_bytes(360, 768, 1344) == 360 * 768 * 1344 * 3 * 4
    assert timeline.max_bytes_setting() == timeline.DEFAULT_MAX_BYTES == 4 * 1024**3
    frames, _ = timeline.render_timeline(torch.rand(1, 8, 8, 3), [1], 12, max_bytes=12 * 8 * 8 * 12)
    assert frames.shape[0] == 12
    with pytest.raises(errors.ValidationError):
        timeline.render_timeline(torch.rand(1, 8, 8, 3), [1], 12, max_bytes=12 * 8 * 8 * 12 - 1)


@pytest.mark.parametrize("raw", ["lots", "0", "-5"])
def test_a_bad_limit_setting_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv(timeline.MAX_BYTES_ENV, raw)
    with pytest.raises(errors.ConfigError, match=timeline.MAX_BYTES_ENV):
        timeline.max_bytes_setting()


# --- plan and node --------------------------------------------------------------------------------


def plan(*durations) -> object:
    scenes = [models.Scene(number=i + 1, image_prompt=f"scene {i + 1}", duration=d) for i, d in enumerate(durations)]
    return models.ScenePlan(scenes=scenes)


def test_plan_durations_and_fallbacks():
    assert timeline.plan_durations(None, 3, 2.5) == ([2.5, 2.5, 2.5], [1, 2, 3], [])
    durations, labels, defaulted = timeline.plan_durations(plan(1.5, None, 3.0), 4, 2.0)
    assert durations == [1.5, 2.0, 3.0, 2.0]
    assert labels == [1, 2, 3, 4] and defaulted == [2, 4]
    odd = plan(0, float("nan"), 2.0)
    odd.scenes[1].duration = "soon"  # a reader that let a string through
    assert timeline.plan_durations([odd], 3, 1.0)[0] == [1.0, 1.0, 2.0]  # a 1-item list from list mode
    with pytest.raises(errors.ValidationError, match="The scene_plan input must come from"):
        timeline.plan_durations("not a plan", 3, 1.0)


def test_fewer_images_than_scenes_is_an_error():
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    with pytest.raises(errors.ValidationError, match="The scene plan has 3 scenes but only 2 images"):
        node.run(torch.rand(2, 8, 8, 3), 12, "none", "cut", 0.5, 0, 0, 4.0, scene_plan=plan(1, 1, 1))


def test_node_without_a_plan_uses_seconds_per_scene():
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(torch.rand(3, 8, 8, 3), 12.0, "none", "cut", 0.5, 0, 0, 2.5)
    frames, fps, text, srt, vtt, audio = out["result"]
    assert srt == vtt == ""  # no plan, no caption texts: no captions
    assert audio["sample_rate"] == 48000 and not audio["waveform"].any()  # no sound given: silence...
    assert audio["waveform"].shape[-1] == 3 * 30 * 48000 // 12  # ...as long as the frames
    assert out["ui"]["text"] == [text]
    assert frames.shape == (90, 8, 8, 3) and fps == 12.0
    assert text.splitlines()[1] == "Scene 2: 2.50 s - 5.00 s (2.50 s, 30 frames)"


def test_node_with_a_plan():
    images = solid((1, 0, 0), (0, 1, 0), (0, 0, 1), height=16, width=24)
    frames, fps, text = timeline_node.ThreeDLabsStoryboardTimeline().run(
        images, 24.0, "slow zoom in", "crossfade", 0.25, 48, 0, 4.0, scene_plan=plan(1 / 3, 2.5, None))["result"][:3]
    assert isinstance(fps, float) and fps == 24.0
    assert frames.shape == (8 + 60 + 96, 32, 48, 3)
    assert frames.dtype == torch.float32 and frames.is_contiguous()
    lines = text.splitlines()
    assert lines[0] == "Scene 1: 0.00 s - 0.33 s (0.33 s, 8 frames)"
    assert lines[1] == "Scene 2: 0.33 s - 2.83 s (2.50 s, 60 frames)"
    assert lines[2] == "Scene 3: 2.83 s - 6.83 s (4.00 s, 96 frames)"
    assert lines[3].startswith("Total: 6.83 s, 164 frames at 24 fps, 48x32")
    assert "scene(s) 3: 4 s each (seconds_per_scene)" in lines[4]


def test_node_inputs_are_the_public_contract():
    node = timeline_node.ThreeDLabsStoryboardTimeline
    inputs = node.INPUT_TYPES()
    assert list(inputs["required"]) == ["images", "fps", "motion", "transition", "crossfade_seconds", "width",
                                        "height", "seconds_per_scene"]
    assert list(inputs["optional"])[0] == "scene_plan"  # the captions' inputs come after it (tests/test_nodes.py)
    assert inputs["optional"]["scene_plan"][0] == "3DLABS_SCENE_PLAN"
    assert inputs["required"]["motion"][0] == ["none", "slow zoom in", "slow zoom out", "pan left", "pan right"]
    assert inputs["required"]["transition"][0] == ["cut", "crossfade"]
    fps = inputs["required"]["fps"][1]
    assert (fps["default"], fps["min"], fps["max"], fps["step"]) == (12.0, 1.0, 60.0, 0.5)
    for name, (_, options) in {**inputs["required"], **inputs["optional"]}.items():
        assert options.get("tooltip"), name
    # srt, vtt and audio are appended: the outputs saved workflows link to keep their numbers.
    assert node.RETURN_TYPES == ("IMAGE", "FLOAT", "STRING", "STRING", "STRING", "AUDIO")
    assert node.RETURN_NAMES == ("frames", "fps", "timeline_text", "srt", "vtt", "audio")
    assert len(node.OUTPUT_TOOLTIPS) == 6 and node.FUNCTION == "run" and node.DESCRIPTION


def test_cancel_stops_the_render(monkeypatch):
    comfy = pack_module("nodes.comfy")
    comfy.set_local_interrupt(True)
    try:
        with pytest.raises(comfy.LocalInterrupted):
            node = timeline_node.ThreeDLabsStoryboardTimeline()
            node.run(torch.rand(2, 16, 16, 3), 12, "pan left", "cut", 0, 0, 0, 2.0)
    finally:
        comfy.set_local_interrupt(False)


def test_renders_under_inference_mode_like_comfyui_runs_nodes():
    # ComfyUI executes nodes inside torch.inference_mode(); worker threads must write in that mode too.
    images = torch.rand(2, 48, 64, 3)
    with torch.inference_mode():
        frames, _ = timeline.render_timeline(images, [1.0, 1.0], 8, "slow zoom in", "crossfade", 0.25, 0, 0,
                                             timeline.DEFAULT_MAX_BYTES)
    assert frames.shape == (16, 48, 64, 3)


# --- the planner alone ----------------------------------------------------------------------------

plan_mod = pack_module("nodes.storyboard.timeline_plan")


def test_the_planner_knows_no_torch():
    import ast

    tree = ast.parse((PACK_DIR / "nodes" / "storyboard" / "timeline_plan.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    assert not imported & {"torch", "numpy", "comfy"}, imported


def test_plan_counts_carry_the_rounding_and_give_the_total():
    plan = plan_mod.plan_timeline([1 / 3, 1 / 3, 1 / 3], 10)
    assert plan.counts == (3, 4, 3) and plan.total == 10 and plan.boundaries == [0, 3, 7, 10]
    plan = plan_mod.plan_timeline([0.7] * 7, 12, labels="ABCDEFG")
    assert plan.total == 59 and len(plan.frames()) == 59
    assert plan.text(8, 8).splitlines()[-1].startswith("Total: 4.92 s, 59 frames at 12 fps")
    with pytest.raises(errors.ValidationError, match="Motion must be one of"):
        plan_mod.plan_timeline([1], 12, motion="spin")


def test_plan_describes_a_crossfade_frame_by_frame():
    plan = plan_mod.plan_timeline([1, 1], 10, "none", "crossfade", 0.4)
    assert plan.fades == (4,) and plan.span(0) == (0, 12) and plan.span(1) == (8, 20)
    frames = plan.frames()
    assert [(f.base.scene, f.over and f.over.scene) for f in frames[6:14]] == (
        [(0, None)] * 2 + [(0, 1)] * 4 + [(1, None)] * 2)
    assert [f.weight for f in frames[8:12]] == [0.2, 0.4, 0.6, 0.8]
    assert all(f.weight == 0.0 for f in frames[:8] + frames[12:])
    assert [f.index for f in plan.frames(5, 9)] == [5, 6, 7, 8]


def test_plan_fades_around_a_short_scene_never_overlap():
    plan = plan_mod.plan_timeline([1, 0.25, 1], 12, "none", "crossfade", 1.0)
    assert plan.counts == (12, 3, 12) and plan.fades == (3, 3)
    mixes = [(f.index, f.base.scene, f.over.scene, f.weight) for f in plan.frames() if f.over]
    assert mixes == [(11, 0, 1, 0.25), (12, 0, 1, 0.5), (13, 0, 1, 0.75),
                     (14, 1, 2, 0.25), (15, 1, 2, 0.5), (16, 1, 2, 0.75)]


def test_plan_moves_run_over_every_frame_a_scene_is_visible():
    plan = plan_mod.plan_timeline([1, 1], 12, "slow zoom in", "crossfade", 0.5)
    first, last = plan.span(1)
    assert (first, last) == (9, 24)
    incoming = [plan.frame(i).over or plan.frame(i).base for i in range(first, last)]
    assert incoming[0].scale == 1.0 and incoming[-1].scale == pytest.approx(plan_mod.KEN_BURNS_ZOOM)
    assert all(b.scale > a.scale for a, b in zip(incoming, incoming[1:]))
    assert plan.frame(14).base.scale == pytest.approx(plan_mod.KEN_BURNS_ZOOM)  # scene 1 ends under the fade
    pan = plan_mod.plan_timeline([2], 12, "pan left").frames()
    travel = 1 - 1 / plan_mod.KEN_BURNS_ZOOM
    assert pan[0].base.centre == pytest.approx(travel) and pan[-1].base.centre == pytest.approx(-travel)
    assert {f.base.scale for f in pan} == {plan_mod.KEN_BURNS_ZOOM}


def test_plan_frames_outside_the_timeline_are_an_error():
    plan = plan_mod.plan_timeline([1], 4)
    with pytest.raises(IndexError):
        plan.frame(4)
    with pytest.raises(IndexError):
        plan.frames(2, 5)


# --- chunked rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize("motion", timeline.MOTIONS)
@pytest.mark.parametrize("transition", timeline.TRANSITIONS)
def test_chunks_of_seven_are_the_whole_render_frame_for_frame(motion, transition):
    images = torch.rand(3, 30, 44, 3) * 1.2 - 0.1
    full, _ = timeline.render_timeline(images, [0.5, 0.25, 0.75], 24, motion, transition, 0.3, 40, 0, None)
    plan = plan_mod.plan_timeline([0.5, 0.25, 0.75], 24, motion, transition, 0.3)
    renderer = timeline.TimelineRenderer(images, plan, *full.shape[1:3])
    seen = []
    chunks = [renderer.render(start, min(plan.total, start + 7), on_progress=lambda d, n: seen.append((d, n)))
              for start in range(0, plan.total, 7)]
    assert full.shape[0] == plan.total == 36 and [c.shape[0] for c in chunks] == [7] * 5 + [1]
    assert torch.equal(torch.cat(chunks), full)
    assert seen[-1] == (1, 1) and all(0 < d <= n for d, n in seen)
    backwards = [renderer.render(start, min(plan.total, start + 5)) for start in reversed(range(0, plan.total, 5))]
    assert torch.equal(torch.cat(backwards[::-1]), full)


def test_a_chunk_of_a_long_video_renders_alone():
    # Five minutes at 24 fps would be 7200 frames; a chunk from the middle needs only its own.
    plan = plan_mod.plan_timeline([30.0] * 10, 24, "slow zoom out", "crossfade", 1.0)
    renderer = timeline.TimelineRenderer(torch.rand(10, 12, 16, 3), plan, 12, 16)
    chunk = renderer.render(3590, 3610)
    assert plan.total == 7200 and chunk.shape == (20, 12, 16, 3)
    assert torch.equal(chunk[7], renderer.render(3597, 3598)[0])
    assert len(renderer._pictures) <= 2
    with pytest.raises(errors.ValidationError, match="2 images but 10 scenes"):
        timeline.TimelineRenderer(torch.rand(2, 12, 16, 3), plan, 12, 16)
