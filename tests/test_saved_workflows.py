"""Workflows saved before the storyboard's new inputs (sizes, narration, music, clips, captions) load with
their widgets in place and render the same frames (the files are the shipped examples as they were)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PACK_DIR, load_pack, pack_module
from workflow_format import load_core_specs, pack_specs, ui_to_api, widget_slots

PACK = load_pack()
SPECS = {**load_core_specs(), **pack_specs(PACK.NODE_CLASS_MAPPINGS)}
SAVED = sorted((PACK_DIR / "tests" / "data" / "saved_workflows").glob("*.json"))
# The storyboard nodes' widgets as saved workflows know them, in their order.
OLD_WIDGETS = ["fps", "motion", "transition", "crossfade_seconds", "width", "height", "seconds_per_scene"]
models = pack_module("nodes.api.models")
video_node = pack_module("nodes.storyboard.video_node")


def test_there_are_saved_workflows_to_check():
    assert len(SAVED) >= 2


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_old_widget_values_land_on_the_same_widgets(path):
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:
        slots = [name for name, _control in widget_slots(SPECS[node["type"]])]
        values = node.get("widgets_values", [])
        assert len(values) <= len(slots), node["type"]
        if node["type"].startswith("3DLabsStoryboard"):
            assert slots[: len(OLD_WIDGETS)] == OLD_WIDGETS
            assert len(values) == len(OLD_WIDGETS)  # saved before: the new widgets take their defaults


def storyboard_inputs(path: Path) -> dict:
    prompt = ui_to_api(json.loads(path.read_text()), SPECS)
    return next(v["inputs"] for v in prompt.values() if v["class_type"] == "3DLabsStoryboardVideo")


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_an_old_workflow_renders_the_frames_it_did(path):
    old = storyboard_inputs(path)
    current = storyboard_inputs(PACK_DIR / "example_workflows" / path.name.replace(" (before captions)", ""))
    assert set(old) < set(current)  # the new file names every new widget, at its default
    images = torch.rand(3, 96, 168, 3)
    plan = models.ScenePlan(scenes=[models.Scene(number=n, image_prompt="p", narration=f"Scene {n} says this.",
                                                 duration=0.5 + 0.25 * n) for n in (1, 2, 3)])
    links = {"images": images, "scene_plan": plan}

    def render(inputs):
        values = {k: v for k, v in inputs.items() if not isinstance(v, list)}
        vid = video_node.ThreeDLabsStoryboardVideo().run(**links, **values)["result"][0]
        return vid, np.concatenate([c.copy() for c in vid.encoder_frames()])

    before, frames_before = render(old)
    after, frames_after = render(current)
    assert {k: current[k] for k in old} == old  # the same workflow, saved again with every widget
    assert np.array_equal(frames_before, frames_after)
    assert before.audio is None and after.audio is None
    assert before.captions is None or not before.captions.files
