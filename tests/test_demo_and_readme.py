"""The main job and the README's promise about it: scripts/demo.py runs the whole pipeline on the bundled
sandbox and writes what it says, and the README's node table names every node's outputs as the nodes have
them. Both broke once without a test noticing: outputs appended to Scene Plan and Image Generate made the
demo's tuple unpacking fail, and the table still listed the old outputs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import PACK_DIR, load_pack

PACK = load_pack()


def test_demo_runs_the_pipeline_on_the_bundled_sandbox_and_writes_what_it_says(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREEDLABS_")}
    env["THREEDLABS_USER_DIR"] = str(tmp_path / "user")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(PACK_DIR / "scripts" / "demo.py"), "--out", str(out),
                           "--job-seconds", "0.3"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bundled SANDBOX" in proc.stdout and "REAL" not in proc.stdout
    count = int(re.search(r"Scene plan: (\d+) scenes", proc.stdout).group(1))
    scenes = sorted(out.glob("scene_*.png"))
    assert count >= 1 and len(scenes) == count
    for path in scenes:
        with Image.open(path) as im:  # 16:9 sandbox images at 1344x768, upscaled 2x
            assert im.format == "PNG" and im.size == (2688, 1536)
            assert np.asarray(im.convert("L")).std() > 1.0  # a picture, not a blank fill
    assert (out / "contact_sheet.png").is_file()
    assert (out / "story.txt").read_text(encoding="utf-8").strip()
    assert (out / "scene_plan.txt").read_text(encoding="utf-8").strip()
    ids = (out / "job_ids.txt").read_text(encoding="utf-8")
    assert re.search(r"^story job_\w+$", ids, re.M) and re.search(r"^plan job_\w+$", ids, re.M)
    assert len(re.findall(r"job_\w+", ids)) == count + 2


def readme_rows() -> dict[str, tuple[str, str]]:
    """node id -> (inputs text, outputs text) from the README's node table."""
    rows = {}
    for line in (PACK_DIR / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| [^|]*\(`(\w+)`\) \| ([^|]*) \| ([^|]*) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def listed_outputs(text: str) -> list[str]:
    """The output names of a table cell: the first word of each item, parentheses dropped."""
    return [item.split()[0] for item in re.sub(r"\([^)]*\)", "", text).split(",") if item.strip()]


def test_readme_node_table_lists_every_node_with_its_outputs_in_order_and_its_inputs():
    rows = readme_rows()
    nodes = PACK.NODE_CLASS_MAPPINGS
    assert set(rows) == set(nodes), "the README's node table and the pack's nodes differ"
    for node_id, cls in nodes.items():
        inputs, outputs = rows[node_id]
        assert listed_outputs(outputs) == list(cls.RETURN_NAMES), node_id
        spec = cls.INPUT_TYPES()
        names = {*spec.get("required", {}), *spec.get("optional", {})}
        said = set(re.findall(r"[a-z_]+", inputs))
        if "Storyboard Timeline's inputs" in inputs:
            said |= set(re.findall(r"[a-z_]+", rows["3DLabsStoryboardTimeline"][0]))
        assert names <= said, f"{node_id}: the README does not name {sorted(names - said)}"


def test_the_table_check_fails_on_a_stale_row():
    stale = "scene_plan, prompts (list), scene_count, plan_text, job_id"
    assert listed_outputs(stale) != list(PACK.NODE_CLASS_MAPPINGS["3DLabsScenePlan"].RETURN_NAMES)
