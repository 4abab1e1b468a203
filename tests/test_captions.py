"""Captions of the storyboard: cues timed to the scenes (SRT, WebVTT), the files beside a saved video, and
captions burned into the frames, with real tensors, real fonts and real MP4 files."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import pack_module

captions = pack_module("nodes.storyboard.captions")
caption_inputs = pack_module("nodes.storyboard.caption_inputs")
caption_render = pack_module("nodes.storyboard.caption_render")
plan_mod = pack_module("nodes.storyboard.timeline_plan")
timeline_node = pack_module("nodes.storyboard.timeline_node")
video_node = pack_module("nodes.storyboard.video_node")
models = pack_module("nodes.api.models")
errors = pack_module("nodes.api.errors")

NARRATIONS = (
    "A fox wakes in the snow. It stretches, shakes the frost from its coat, and looks at the silent valley "
    "below, where the river has frozen over during the long night.",
    "Short.",
    "The sun climbs over the ridge, the ice begins to crack, and somewhere far away a bell rings for the "
    "first time this winter, calling the village to the square.",
    "从前有一座山，山里有一座庙，庙里有一个老和尚在给小和尚讲故事。他讲的是什么呢？",
)
DURATIONS = (4.3, 1.7, 5.15, 3.3)
BASE = dict(motion="none", transition="cut", crossfade_seconds=0.0, width=0, height=0, seconds_per_scene=2.0)


def scene_plan(durations=DURATIONS, narrations=NARRATIONS):
    scenes = [models.Scene(number=i + 1, image_prompt=f"scene {i + 1}", narration=text, duration=d)
              for i, (d, text) in enumerate(zip(durations, narrations))]
    return models.ScenePlan(scenes=scenes)


def pictures(count=4, height=96, width=160):
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([torch.stack([x * 0.5, y * 0.4 + 0.1 * k, torch.full_like(x, 0.3)], -1)
                        for k in range(count)]).contiguous()


STAMP = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def parse(text: str) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every cue of an SRT or WebVTT text, read as a player reads it."""
    cues = []
    for block in re.split(r"\n\n+", text.strip()):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if m := STAMP.fullmatch(line):
                g = [int(v) for v in m.groups()]
                start = ((g[0] * 60 + g[1]) * 60 + g[2]) * 1000 + g[3]
                end = ((g[4] * 60 + g[5]) * 60 + g[6]) * 1000 + g[7]
                cues.append((start, end, "\n".join(lines[i + 1:])))
    return cues


def ms(frame: int, fps: float) -> int:
    """A frame's time to the millisecond, rounded half up (computed here from the frame count alone)."""
    return int(Fraction(frame) * 1000 / Fraction(str(fps)) + Fraction(1, 2))


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0])
def test_srt_and_vtt_cues_start_and_end_with_the_scenes_to_the_millisecond(fps):
    plan = plan_mod.plan_timeline(DURATIONS, fps)
    out = timeline_node.ThreeDLabsStoryboardTimeline().run(pictures(height=16, width=24), fps, scene_plan=scene_plan(),
                                                           **BASE)["result"]
    srt, vtt = out[3], out[4]
    assert vtt.startswith("WEBVTT\n\n")
    for text in (srt, vtt):
        cues = parse(text)
        assert len(cues) > len(DURATIONS)  # the long narrations were split
        edges = plan.boundaries
        starts = {ms(edges[i], fps) for i in range(len(DURATIONS))}
        ends = {ms(edges[i + 1], fps) for i in range(len(DURATIONS))}
        assert {c[0] for c in cues} >= starts and {c[1] for c in cues} >= ends
        assert cues[0][0] == 0 and cues[-1][1] == ms(plan.total, fps)
        for before, after in zip(cues, cues[1:]):
            assert before[1] == after[0] and before[0] < before[1]  # back to back, none empty
        # Each scene's cues hold its narration, in order, every word once.
        for i, narration in enumerate(NARRATIONS):
            lo, hi = ms(edges[i], fps), ms(edges[i + 1], fps)
            said = [c[2] for c in cues if lo <= c[0] and c[1] <= hi]
            joined = "".join("".join(t.split()) for t in said)
            assert joined == "".join(narration.split()), (i, said)


def test_cues_are_readable_lines_broken_at_sentences_and_share_their_scene_by_length():
    texts = captions.split_text(NARRATIONS[0])
    for cue in texts:
        lines = cue.split("\n")
        assert 1 <= len(lines) <= 2 and all(len(line) <= captions.LINE_CHARS for line in lines), cue
    assert texts[0] == "A fox wakes in the snow."  # a sentence's end ends its cue
    cues = captions.scene_cues(NARRATIONS[0], 0, 240)
    lengths = [len(c.text) for c in cues]
    frames = [c.last - c.first for c in cues]
    longest, shortest = lengths.index(max(lengths)), lengths.index(min(lengths))
    assert frames[longest] > frames[shortest]
    assert cues[0].first == 0 and cues[-1].last == 240


def test_scripts_without_spaces_are_broken_between_characters_and_joined_without_spaces():
    text = "庙里有一个老和尚" * 12  # 96 wide characters, no punctuation at all
    cues = captions.split_text(text)
    assert "".join(c.replace("\n", "") for c in cues) == text  # no space was added anywhere
    for cue in cues:
        assert all(captions.text_width(line) <= captions.LINE_CHARS for line in cue.split("\n"))


def test_more_cues_than_frames_still_gives_every_cue_a_frame():
    cues = captions.scene_cues(NARRATIONS[0], 10, 13)
    assert cues[0].first == 10 and cues[-1].last == 13
    assert all(c.last > c.first for c in cues) and len(cues) <= 3


def test_caption_texts_list_one_per_scene_as_comfyui_hands_it_over():
    """INPUT_IS_LIST: every input a list; caption_texts a list of strings, one per scene."""
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    texts = ["One.", "Two.", "Three.", "Four."]
    wrapped = {k: [v] for k, v in BASE.items()}
    out = node.run(images=[pictures(height=16, width=24)], fps=[10.0], scene_plan=[scene_plan()],
                   caption_texts=texts, captions=["subtitle files"], unique_id=["7"], **wrapped)["result"]
    assert [c[2] for c in parse(out[3])] == texts
    assert "Captions: 4 cues" in out[2]


def test_one_text_with_a_line_per_scene_and_a_wrong_count_named():
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    out = node.run(pictures(3, 16, 24), 10.0, caption_texts="Alpha\nBeta\nGamma", **BASE)["result"]
    assert [c[2] for c in parse(out[3])] == ["Alpha", "Beta", "Gamma"]
    with pytest.raises(errors.ValidationError, match="2 caption texts for the 3 scenes"):
        node.run(pictures(3, 16, 24), 10.0, caption_texts=["a", "b"], **BASE)


def test_captions_asked_for_without_any_text_say_so():
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    with pytest.raises(errors.ValidationError, match="no narration and nothing is connected to caption_texts"):
        node.run(pictures(2, 16, 24), 10.0, captions="subtitle files and burned in", **BASE)


@pytest.mark.parametrize(("option", "value", "words"), [
    ("caption_color", "not-a-colour", "The caption_color 'not-a-colour' is not a colour"),
    ("caption_outline_color", "#12", "The caption_outline_color '#12' is not a colour"),
    ("caption_font", "/no/such/font.ttf", "The caption font file '/no/such/font.ttf' does not exist"),
    ("caption_position", "left", "The caption_position must be one of bottom, middle, top"),
])
def test_a_bad_caption_style_is_named_before_any_frame_is_made(option, value, words, monkeypatch):
    rendered = []
    monkeypatch.setattr(pack_module("nodes.storyboard.timeline").TimelineRenderer, "render",
                        lambda *a, **k: rendered.append(1))
    with pytest.raises(errors.ValidationError, match=re.escape(words)):
        timeline_node.ThreeDLabsStoryboardTimeline().run(
            pictures(height=16, width=24), 10.0, scene_plan=scene_plan(), captions="subtitle files and burned in",
            **{option: value}, **BASE)
    assert not rendered


def test_default_inputs_render_the_frames_of_a_workflow_saved_before_captions():
    plan = scene_plan()
    silent = scene_plan(narrations=[""] * 4)
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    with_text = node.run(pictures(), 8.0, scene_plan=plan, **BASE)["result"]
    without = node.run(pictures(), 8.0, scene_plan=silent, **BASE)["result"]
    assert torch.equal(with_text[0], without[0])
    assert with_text[2] == without[2]  # the timeline text says nothing new either
    assert parse(with_text[3]) and without[3] == without[4] == ""


def burned(**style):
    node = timeline_node.ThreeDLabsStoryboardTimeline()
    args = dict(scene_plan=scene_plan(), captions="subtitle files and burned in", **BASE, **style)
    return node.run(pictures(height=180, width=320), 10.0, **args)["result"]


def test_burned_in_captions_change_only_their_place_and_follow_the_cues():
    plain = timeline_node.ThreeDLabsStoryboardTimeline().run(
        pictures(height=180, width=320), 10.0, scene_plan=scene_plan(), **BASE)["result"][0]
    frames, _fps, _text, srt, _vtt, _audio = burned(caption_outline=2, caption_box=True)
    changed = (frames - plain).abs().amax(dim=-1) > 1e-6  # [F, H, W]
    assert bool(changed.any(dim=(1, 2)).all()), "every frame shows a caption"
    rows = changed.any(dim=(0, 2)).nonzero()
    assert int(rows.min()) > 180 // 2, "bottom captions stay in the lower half"
    assert int(rows.max()) < 180 - round(caption_render.MARGIN * 180) + 1
    # The drawing changes exactly where the SRT says a new cue starts.
    starts = {round(c[0] * 10 / 1000) for c in parse(srt)}
    for index in range(1, frames.shape[0]):
        same = torch.equal(frames[index] - plain[index], frames[index - 1] - plain[index - 1])
        if index in starts:
            assert not same, f"frame {index} starts a cue but shows the previous caption"


def test_position_top_and_a_font_file_for_other_scripts(tmp_path):
    fonts = sorted(p for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                               "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
                   if __import__("os").path.isfile(p))
    if not fonts:
        pytest.skip("no TrueType font file on this machine (Debian: fonts-dejavu-core)")
    plain = timeline_node.ThreeDLabsStoryboardTimeline().run(
        pictures(height=180, width=320), 10.0, scene_plan=scene_plan(), **BASE)["result"][0]
    frames = burned(caption_position="top", caption_font=fonts[0], caption_font_size=14)[0]
    rows = ((frames - plain).abs().amax(dim=-1) > 1e-6).any(dim=(0, 2)).nonzero()
    assert int(rows.max()) < 180 // 2


def test_long_lines_wrap_to_the_frame_and_the_patch_never_leaves_it():
    style = caption_render.CaptionStyle(font_size=40, max_width=0.5)
    patch = caption_render.draw_patch("A rather long line of caption text that must wrap", style, 120, 200)
    h, w = patch.colour.shape[:2]
    assert 0 <= patch.left and patch.left + w <= 200 and 0 <= patch.top and patch.top + h <= 120
    assert float(patch.alpha.max()) == 1.0 and float(patch.alpha.min()) == 0.0


def frames_of(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_saved_video_has_its_srt_and_vtt_beside_it_and_a_trim_has_its_own(tmp_path):
    vid, _text, srt, vtt = video_node.ThreeDLabsStoryboardVideo().run(
        pictures(height=64, width=96), 10.0, scene_plan=scene_plan(), captions="subtitle files", **BASE)["result"]
    target = tmp_path / "short_00001_.mp4"
    vid.save_to(str(target))
    assert (tmp_path / "short_00001_.srt").read_text(encoding="utf-8") == srt
    assert (tmp_path / "short_00001_.vtt").read_text(encoding="utf-8") == vtt
    assert len(frames_of(target)) == vid.get_frame_count()
    part = vid.as_trimmed(start_time=2.0, duration=3.0)
    part.save_to(str(tmp_path / "part.mp4"))
    cues = parse((tmp_path / "part.srt").read_text(encoding="utf-8"))
    assert cues[0][0] == 0 and cues[-1][1] == 3000  # the part's own clock
    whole = parse(srt)
    inside = [c for c in whole if c[1] > 2000 and c[0] < 5000]
    assert [c[2] for c in cues] == [c[2] for c in inside]


def test_no_files_without_captions_and_none_for_a_file_object(tmp_path):
    vid = video_node.ThreeDLabsStoryboardVideo().run(
        pictures(height=64, width=96), 10.0, scene_plan=scene_plan(), **BASE)["result"][0]
    vid.save_to(str(tmp_path / "plain.mp4"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mp4"]
    with_files = video_node.ThreeDLabsStoryboardVideo().run(
        pictures(height=64, width=96), 10.0, scene_plan=scene_plan(), captions="subtitle files", **BASE)["result"][0]
    buffer = with_files.get_stream_source()  # in memory: nothing to write beside
    assert buffer.getbuffer().nbytes > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mp4"]


def test_burned_in_captions_are_the_same_in_the_saved_video_as_in_the_timeline(tmp_path):
    args = dict(scene_plan=scene_plan(), captions="subtitle files and burned in", caption_box=True, **BASE)
    frames = timeline_node.ThreeDLabsStoryboardTimeline().run(pictures(height=64, width=96), 10.0,
                                                              **args)["result"][0]
    vid = video_node.ThreeDLabsStoryboardVideo().run(pictures(height=64, width=96), 10.0, **args)["result"][0]
    chunks = np.concatenate([c.copy() for c in vid.encoder_frames()])
    expected = (frames * 255).clamp(0, 255).byte().numpy()
    assert np.array_equal(chunks, expected)
    components = vid.get_components()
    assert torch.equal(components.images, frames)
