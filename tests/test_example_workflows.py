"""The example workflows: static checks always; an opt-in run of each in a real ComfyUI."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

import pytest
from PIL import Image

from comfyui_harness import (
    CHECKOUT_PARAMS,
    COMFYUI_PATH,
    SKIP_REASON,
    checkout_id,
    comfy_python,
    messages,
    running_comfy,
)
from conftest import PACK_DIR, load_pack
from workflow_format import is_widget, load_core_specs, pack_specs, ui_to_api, widget_slots

WORKFLOW_DIR = PACK_DIR / "example_workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
CORE = json.loads((PACK_DIR / "tests" / "data" / "comfyui_core_nodes.json").read_text())["nodes"]
PACK = load_pack()
SPECS = {**load_core_specs(), **pack_specs(PACK.NODE_CLASS_MAPPINGS)}
OUTPUT_TYPES = {**{n: list(c["output"]) for n, c in CORE.items()},
                **{n: list(cls.RETURN_TYPES) for n, cls in PACK.NODE_CLASS_MAPPINGS.items()}}
OUTPUT_NODES = {n for n, c in CORE.items() if c.get("output_node")}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


def test_there_are_six_example_workflows_with_thumbnails():
    names = {p.stem for p in WORKFLOWS}
    assert names == {"Topic to storyboard", "Topic to video", "One prompt to one image",
                     "Submit now and collect later", "Project to video", "Topic to captioned short"}
    for path in WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.exists(), f"{thumb.name} is missing"
        with Image.open(thumb) as im:
            assert im.format == "JPEG" and im.width >= 256


def _spec_entry(spec, name):
    for section in ("required", "optional"):
        if name in spec.get(section, {}):
            return spec[section][name]
    raise KeyError(name)


def _types_match(output_type: str, input_type: str) -> bool:
    received = {t.strip() for t in output_type.split(",")}
    accepted = {t.strip() for t in input_type.split(",")}
    return "*" in accepted or bool(received & accepted)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_matches_the_nodes(path):
    workflow = json.loads(path.read_text())
    assert workflow.get("version") == 0.4 and workflow["nodes"]
    by_id = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        assert node["type"] in SPECS, f"unknown node type {node['type']}"
        spec = SPECS[node["type"]]
        slots = widget_slots(spec)
        values = node.get("widgets_values", [])
        assert len(values) == len(slots), f"{path.name} node {node['id']} ({node['type']}): {len(values)} widget " \
                                          f"values for {len(slots)} widgets {slots}"
        for (name, is_control), value in zip(slots, values):
            kind, opts = _spec_entry(spec, name)
            if is_control:
                assert value in CONTROL_VALUES, (node["type"], name, value)
                assert value == "fixed", "examples must not re-bill on every queue"
            elif isinstance(kind, list) or kind == "COMBO":
                options = kind if isinstance(kind, list) else opts["options"]
                assert value in options, (node["type"], name, value)
            elif kind == "INT":
                assert isinstance(value, int) and opts.get("min", value) <= value <= opts.get("max", value)
            elif kind == "FLOAT":
                assert isinstance(value, (int, float)) and opts.get("min", value) <= value <= opts.get("max", value)
            elif kind == "BOOLEAN":
                assert isinstance(value, bool)
            elif kind == "STRING":
                assert isinstance(value, str)
        for entry in node.get("inputs", []):
            kind, opts = _spec_entry(spec, entry["name"])
            if not is_widget(kind, opts) and entry.get("link") is None:
                assert entry["name"] in spec.get("optional", {}), f"required input {entry['name']} is unlinked"
    for link_id, src, src_slot, dst, dst_slot, _kind in workflow["links"]:
        source, target = by_id[src], by_id[dst]
        out_type = OUTPUT_TYPES[source["type"]][src_slot]
        entry = target["inputs"][dst_slot]
        assert entry["link"] == link_id
        in_kind, _ = _spec_entry(SPECS[target["type"]], entry["name"])
        in_type = "COMBO" if isinstance(in_kind, list) else in_kind
        assert _types_match(out_type, in_type), f"{source['type']} -> {target['type']}.{entry['name']}"
        assert link_id in source["outputs"][src_slot]["links"]
    assert {n["type"] for n in workflow["nodes"]} & OUTPUT_NODES, f"{path.name} has no output node"
    assert any(n["type"].startswith("3DLabs") for n in workflow["nodes"])
    text = path.read_text().lower()
    assert "bearer" not in text and "token" not in text and "eyj" not in text


def test_ui_to_api_conversion_names_every_input():
    workflow = json.loads((WORKFLOW_DIR / "Topic to video.json").read_text())
    prompt = ui_to_api(workflow, SPECS)
    story = next(v for v in prompt.values() if v["class_type"] == "3DLabsStory")
    assert set(story["inputs"]) == {"topic", "max_minutes", "provider", "seed", "project_id"}
    video = next(v for v in prompt.values() if v["class_type"] == "3DLabsStoryboardVideo")
    assert (video["inputs"]["width"], video["inputs"]["height"], video["inputs"]["fps"]) == (1344, 768, 24.0)
    assert isinstance(video["inputs"]["scene_plan"], list), "the plan times the video"
    save = next(v for v in prompt.values() if v["class_type"] == "SaveVideo")
    assert prompt[save["inputs"]["video"][0]] is video, "SaveVideo writes the Storyboard Video"


# --- opt-in: each workflow runs in a real ComfyUI against the sandbox ---------------------------

pytest_comfy = pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)

VIDEO_PROBE = r"""
import av, json, sys
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    frames = 0
    pick = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    for frame in c.decode(s):
        if frames == pick:
            frame.to_image().save(sys.argv[2])
        frames += 1
    print(json.dumps({"frames": frames, "fps": float(s.average_rate), "width": s.width, "height": s.height,
                      "duration": float(c.duration / 1e6) if c.duration else None}))
"""


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, sandbox_server, tmp_path_factory):
    with running_comfy(PACK_DIR, tmp_path_factory.mktemp("comfy-examples"), request.param, sandbox_server) as server:
        yield server


def _outputs(comfy, entry, kind):
    files = []
    for node_out in entry["outputs"].values():
        for item in node_out.get(kind, []):
            if item.get("type", "output") != "output":  # a node's previews (temp), not a saved file
                continue
            files.append(comfy.base / "output" / item.get("subfolder", "") / item["filename"])
    return files


def _contact_sheet(paths) -> Image.Image:
    tiles = [Image.open(p).convert("RGB") for p in paths]
    if len(tiles) == 1:
        return tiles[0]
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * 2, h * ((len(tiles) + 1) // 2)))
    for k, tile in enumerate(tiles):
        sheet.paste(tile.resize((w, h)), ((k % 2) * w, (k // 2) * h))
    return sheet


def _thumbnail_frame(timeline: str) -> int:
    """The frame in the middle of the middle scene (the video's middle frame may fall on a crossfade, two
    scenes' captions drawn over each other), from the timeline's "Scene n: a - b (c s, N frames)" lines."""
    counts = [int(m.group(1)) for m in re.finditer(r"^Scene .*, (\d+) frames\)$", timeline, re.M)]
    scene = len(counts) // 2
    return sum(counts[:scene]) + counts[scene] // 2


def _thumbnail(image: Image.Image, path):
    image = image.convert("RGB")
    image.thumbnail((512, 512))
    image.save(path, "JPEG", quality=85)


@pytest_comfy
@pytest.mark.comfyui
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_example_runs_in_real_comfyui(comfy, sandbox, path, tmp_path):
    sandbox.job_seconds = 0.5
    workflow = json.loads(path.read_text())
    prompt = ui_to_api(workflow, SPECS)
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=600)
    assert entry["status"]["status_str"] == "success", messages(entry, "execution_error")
    write = os.environ.get("THREEDLABS_WRITE_THUMBNAILS") == "1"
    if "video" in path.stem or "short" in path.stem:
        [video] = _outputs(comfy, entry, "images") or _outputs(comfy, entry, "videos")
        assert video.suffix == ".mp4", entry["outputs"]
        frame_png = tmp_path / "frame.png"
        texts = [o["text"][0] for o in entry["outputs"].values() if o.get("text")]
        timeline = next(t for t in texts if re.search(r"^Total", t, re.M))
        total_line = re.search(r"^Total.*$", timeline, re.M).group(0)
        probe = subprocess.run([comfy_python(comfy.checkout), "-c", VIDEO_PROBE, str(video), str(frame_png),
                                str(_thumbnail_frame(timeline))], capture_output=True, text=True, check=True,
                               timeout=300)
        info = json.loads(probe.stdout)
        total = float(re.search(r"([0-9.]+) s", total_line).group(1))
        duration = info["frames"] / info["fps"]
        print(f"\n{path.stem}: video {duration:.3f} s ({info['frames']} frames at {info['fps']:g} fps); "
              f"plan {total:g} s")
        assert info["frames"] == math.floor(total * info["fps"] + 0.5), (info, timeline)  # the plan's full length
        assert abs(duration - total) <= 1 / info["fps"] + 1e-6, (info, timeline)
        storyboard = next(v["inputs"] for v in prompt.values() if v["class_type"] == "3DLabsStoryboardVideo")
        size = storyboard.get("size", "custom")
        expected = tuple(map(int, size.split("x"))) if size != "custom" else (storyboard["width"],
                                                                                storyboard["height"])
        assert (info["width"], info["height"], info["fps"]) == (*expected, 24.0)
        if storyboard.get("captions", "none") != "none":  # the subtitles beside the MP4, timed to its end
            srt, vtt = video.with_suffix(".srt"), video.with_suffix(".vtt")
            assert srt.is_file() and vtt.is_file(), sorted(p.name for p in video.parent.iterdir())
            last_end = re.findall(r"--> (\d\d):(\d\d):(\d\d),(\d\d\d)", srt.read_text(encoding="utf-8"))[-1]
            h, m, sec, ms = map(int, last_end)
            assert abs((h * 3600 + m * 60 + sec) + ms / 1000 - total) <= 0.0005 + 1e-9, (last_end, total)
            assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
        if write:
            _thumbnail(Image.open(frame_png), path.with_suffix(".jpg"))
    else:
        pngs = [p for p in _outputs(comfy, entry, "images") if p.suffix == ".png"]
        assert pngs, entry["outputs"]
        with Image.open(pngs[0]) as im:
            assert im.width >= 512
        if write:  # a storyboard shows as a contact sheet of its scenes, so no two templates look alike
            _thumbnail(_contact_sheet(pngs[:4]), path.with_suffix(".jpg"))


@pytest_comfy
@pytest.mark.comfyui
def test_project_to_video_on_a_project_with_images_for_2_of_its_4_scenes(comfy, sandbox, tmp_path):
    """A project still being made in the 3DLabs app: the example runs to success, the storyboard has the two
    scenes with images, and the node texts name the two without."""
    workflow = json.loads((WORKFLOW_DIR / "Project to video.json").read_text())
    prompt = ui_to_api(workflow, SPECS)
    [load] = [node for node in prompt.values() if node["class_type"] == "3DLabsLoadProject"]
    load["inputs"]["project_id"] = "proj_partial"  # the sandbox's partial project: scenes 1 and 3 have images
    entry = comfy.history(comfy.queue_prompt(prompt), timeout=600)
    assert entry["status"]["status_str"] == "success", messages(entry, "execution_error")
    [video] = _outputs(comfy, entry, "images") or _outputs(comfy, entry, "videos")
    probe = subprocess.run([comfy_python(comfy.checkout), "-c", VIDEO_PROBE, str(video)],
                           capture_output=True, text=True, check=True, timeout=300)
    info = json.loads(probe.stdout)
    texts = "\n".join(o["text"][0] for o in entry["outputs"].values() if o.get("text"))
    assert "scenes 2, 4" in texts or "scene(s) 2, 4" in texts, texts
    assert info["frames"] == 720 and info["fps"] == 24.0, info  # scenes 1 and 3, 15 s each
