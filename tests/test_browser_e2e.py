"""Opt-in: the web extension in a real ComfyUI, driven by headless Chromium, and the token kept secret.

Runs when COMFYUI_PATH points at a ComfyUI checkout and Chromium (CHROMIUM, default /usr/bin/chromium),
node and playwright-core (under PLAYWRIGHT_CORE_DIR, default /work/browser) are found. The sandbox is
the API (THREEDLABS_BASE_URL in ComfyUI's environment) and accepts one random token, which the browser
sets through the 3DLabs settings panel: the workflows only run if the token took that path. Then the
token is looked for everywhere it must not be. tests/browser/e2e.js does the browser half; screenshots
go to THREEDLABS_SCREENSHOT_DIR, or a temporary folder printed in the test output.
THREEDLABS_E2E_WORKFLOWS may name a folder of workflows to open instead of example_workflows/.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from comfyui_harness import COMFYUI_PATH, SKIP_REASON, ComfyServer
from conftest import PACK_DIR, pack_module

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT_CORE_DIR = Path(os.environ.get("PLAYWRIGHT_CORE_DIR", "/work/browser"))
SCRIPT = Path(__file__).parent / "browser" / "e2e.js"
MODULE = "comfyui-3dlabs"  # the folder name ComfyServer links the pack under: the template browser's category


def _playwright_found() -> bool:
    return any((PLAYWRIGHT_CORE_DIR / sub / "package.json").exists()
               for sub in ("node_modules/playwright-core", "playwright-core"))


def _skip_reason() -> str | None:
    if not COMFYUI_PATH:
        return SKIP_REASON
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (set CHROMIUM): the browser test is skipped."
    if shutil.which("node") is None:
        return "node is not on PATH: the browser test is skipped."
    if not _playwright_found():
        return (f"playwright-core not found under {PLAYWRIGHT_CORE_DIR} (set PLAYWRIGHT_CORE_DIR to the parent of "
                "its node_modules): the browser test is skipped.")
    return None


pytestmark = [pytest.mark.browser, pytest.mark.comfyui,
              pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")]


def pack_for_run(tmp: Path) -> tuple[Path, Path | None]:
    """The pack to link into ComfyUI, and where the browser may write a workflow of its own.

    With example workflows in the pack, the pack itself. Otherwise a stand-in folder of symlinks to
    the pack whose example_workflows folder is a temporary one, outside the repository: filled from
    THREEDLABS_E2E_WORKFLOWS (a folder of UI-format workflows to try before they land in the pack)
    if set, else left empty for the browser to write a small workflow built in the page.
    """
    extra = os.environ.get("THREEDLABS_E2E_WORKFLOWS", "").strip()
    if not extra and sorted((PACK_DIR / "example_workflows").glob("*.json")):
        return PACK_DIR, None
    shadow = tmp / "pack"
    shadow.mkdir()
    for entry in PACK_DIR.iterdir():
        if entry.name.startswith(".") or entry.name == "example_workflows":
            continue
        (shadow / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    examples = shadow / "example_workflows"
    examples.mkdir()
    if extra:
        for path in sorted(Path(extra).glob("*")):
            if path.suffix in (".json", ".jpg"):
                shutil.copy(path, examples / path.name)
        return shadow, None
    return shadow, examples


def png_text_chunks(path: Path) -> dict[str, str]:
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        return {k: str(v) for k, v in getattr(im, "text", {}).items()}


def files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_settings_panel_templates_and_no_token_leak(tmp_path_factory):
    token = "zqE2E" + secrets.token_hex(16)  # not token-shaped: only real secrecy can keep it out of view
    base = tmp_path_factory.mktemp("browser-e2e")
    shots = Path(os.environ.get("THREEDLABS_SCREENSHOT_DIR") or base / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots and results.json: {shots}")
    pack_dir, fallback_dir = pack_for_run(base)
    if fallback_dir is not None:
        print(f"no example_workflows/*.json in the pack yet: the browser writes one of its own to {fallback_dir}")
    elif pack_dir != PACK_DIR:
        print(f"workflows from THREEDLABS_E2E_WORKFLOWS={os.environ['THREEDLABS_E2E_WORKFLOWS']}")

    sandbox = pack_module("sandbox.server").SandboxServer(job_seconds=0.5, static_tokens=[token]).start()
    tdl_user = base / "threedlabs-user"
    env = {"THREEDLABS_BASE_URL": sandbox.api_url, "THREEDLABS_USER_DIR": str(tdl_user)}
    # Nothing from the developer's environment may stand in for the token set in the browser.
    env.update({name: "" for name in ("THREEDLABS_TOKEN", "THREEDLABS_TOKEN_COMMAND", "THREEDLABS_WORKSPACE_ID",
                                      "THREEDLABS_PROFILE", "THREEDLABS_MAX_JOBS", "THREEDLABS_DRY_RUN")})
    comfy = ComfyServer(pack_dir, base / "comfy", env)
    try:
        comfy.wait_ready()
        seconds = comfy.import_seconds()
        assert seconds is not None and seconds < 0.2, f"the pack took {seconds} s to import"
        assert comfy.get("/3dlabs/status")["token"]["configured"] is False

        proc = subprocess.run(
            ["node", str(SCRIPT)], capture_output=True, text=True, timeout=900, cwd=SCRIPT.parent,
            env={**os.environ, "COMFY_URL": comfy.url, "TDL_TOKEN": token, "TDL_OUT": str(shots),
                 "TDL_MODULE": MODULE, "TDL_FALLBACK_DIR": str(fallback_dir or ""), "TDL_SANDBOX_URL": sandbox.origin,
                 "PLAYWRIGHT_CORE_DIR": str(PLAYWRIGHT_CORE_DIR), "CHROMIUM": CHROMIUM})
        print(proc.stdout[-6000:])
        results_file = shots / "results.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        assert proc.returncode == 0, (f"the browser script failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n"
                                      f"{results.get('errors')}\nlog tail:\n{comfy.log()[-3000:]}")
        print(f"templates opened via: {results['templatePath']} ('ui' = the template browser, 'api' = "
              "/api/workflow_templates + app.loadGraphData)")

        check_our_requests(results)
        check_settings_panel(results, token)
        check_workflows(comfy, results, shots)
        check_load_project(comfy, results, shots)
        check_fresh_node_pays_once(results)
        check_token_stays_secret(comfy, results_file, tdl_user, token)
        assert (shots / "settings-3dlabs.png").exists() and (shots / "load-project-dropdown.png").exists()
    finally:
        comfy.stop()
        sandbox.stop()


def check_our_requests(results: dict) -> None:
    ours = [line for line in results["httpErrors"] if "/3dlabs/" in line or f"/extensions/{MODULE}/" in line]
    assert not ours, f"requests of the pack's web extension failed: {ours}"


def check_settings_panel(results: dict, token: str) -> None:
    assert results["tokenInputAfterSave"] == "", "the token field must be emptied after saving"
    assert token[-4:] in results["tokenStatus"] and "config file" in results["tokenStatus"], results["tokenStatus"]
    assert "not in ComfyUI's settings" in results["tokenMessage"]
    assert results["testConnection"].startswith("Connected to http://127.0.0.1:"), results["testConnection"]
    assert len(results["workspaceOptions"]) > 1, results["workspaceOptions"]


def check_our_nodes(nodes: list[dict], executed: list[str]) -> None:
    for node in nodes:
        where = f"{node['type']} #{node['id']}"
        assert "3dlabs_output" in node["widgetNames"], where
        # Display-only widgets stay out of the saved workflow and out of the prompt.
        assert "3dlabs_output" not in node["serializableWidgets"], where
        assert "$$node-text-preview" not in node["serializableWidgets"], where
        assert "3dlabs_output" not in node["promptInputs"] and "project" not in node["promptInputs"], where
        values = node["widgets_values"] or []
        assert len(values) == len(node["serializableWidgets"]), (where, values, node["serializableWidgets"])
        if str(node["id"]) in executed:
            assert node["output"], f"{where} ran but shows no output"


def check_history(comfy: ComfyServer, prompt_id: str, name: str) -> None:
    entry = comfy.get(f"/history/{prompt_id}")[prompt_id]
    assert entry["status"]["status_str"] == "success", (name, entry["status"])
    assert entry["outputs"], f"{name} finished without outputs"


def check_workflows(comfy: ComfyServer, results: dict, shots: Path) -> None:
    assert results["templates"], "the template browser lists no workflow of the pack"
    assert results["templatePath"] in ("ui", "api", "mixed")
    failed = [(run["name"], run["end"], run["nodeErrors"], run["executionErrors"]) for run in results["workflows"]
              if run["end"]["type"] != "execution_success" or run["nodeErrors"]]
    assert not failed, f"{len(failed)} of {len(results['workflows'])} workflows did not run: {failed}"
    for run in results["workflows"]:
        name = run["name"]
        check_history(comfy, run["end"]["prompt_id"], name)
        assert not run["executionErrors"], (name, run["executionErrors"])
        assert not run["dialogsAfterLoad"] and not run["dialogsAfterRun"], (name, run["dialogsAfterLoad"],
                                                                            run["dialogsAfterRun"])
        assert run["nodes"], f"{name} has no 3DLabs node"
        check_our_nodes(run["nodes"], run["executed"])
        assert (shots / f"workflow-{name}.png").exists()
    # The pack's status text reaches the nodes while they run (ComfyUI's progress_text display).
    assert any(run["progressTexts"] for run in results["workflows"])
    assert any(n["progressText"] for run in results["workflows"] for n in run["nodes"])


def check_load_project(comfy: ComfyServer, results: dict, shots: Path) -> None:
    menu = results["projectMenu"]
    assert any(" — " in entry for entry in menu), menu
    picked = results["projectPicked"]
    assert picked["project_id"] and picked["label"].endswith(f" — {picked['project_id']}"), picked
    run = results["loadProject"]
    assert run["end"]["type"] == "execution_success" and not run["executionErrors"] and not run["nodeErrors"], run
    check_history(comfy, run["end"]["prompt_id"], "Load Project")
    [node] = [n for n in run["nodes"] if n["type"] == "3DLabsLoadProject"]
    assert node["widgets_values"] == [picked["project_id"]], "project_id must stay the only saved widget value"
    assert node["output"], "Load Project shows no story text"
    assert (shots / "load-project-after-run.png").exists()


def check_fresh_node_pays_once(results: dict) -> None:
    """Image Generate made as the node search makes it, queued twice unchanged: one paid job."""
    fresh = results["freshNode"]
    assert fresh["created"]["control"] == "fixed", fresh["created"]
    for run in fresh["runs"]:
        assert run["end"]["type"] == "execution_success" and not run["nodeErrors"], run
        assert run["control"] == "fixed" and run["seed"] == fresh["created"]["seed"], run
    assert fresh["jobsAfter"]["image"] - fresh["jobsBefore"]["image"] == 1, fresh
    assert fresh["jobsAfter"]["posts"] - fresh["jobsBefore"]["posts"] == 1, fresh
    assert fresh["loadedControl"] == "randomize", "a saved control value must win over the pin"


def check_token_stays_secret(comfy: ComfyServer, results_file: Path, tdl_user: Path, token: str) -> None:
    def absent(text: str, where: str) -> None:
        assert token not in text, f"the token leaked into {where}"

    # What the browser saw and kept: graphs (app.graph.serialize()), the workflow saved through the
    # UI, localStorage and sessionStorage (all keys and values).
    results_text = results_file.read_text()
    absent(results_text, "the browser's state (graphs, saved workflow, local/session storage)")
    results = json.loads(results_text)
    assert results["savedWorkflow"] and results["localStorage"], "nothing was collected to check"
    # The server side: /history, /settings, the pack's status, every output PNG's metadata, every
    # file of ComfyUI's user dir (comfy.settings.json, saved workflows), the pack's journal, the log.
    absent(json.dumps(comfy.get("/history")), "/history")
    absent(json.dumps(comfy.get("/settings")), "/settings")
    absent(json.dumps(comfy.get("/3dlabs/status")), "/3dlabs/status")
    pngs = sorted((comfy.base / "output").rglob("*.png"))
    assert pngs, "no output PNG to check"
    for png in pngs:
        chunks = png_text_chunks(png)
        assert "workflow" in chunks and "prompt" in chunks, (png.name, list(chunks))
        absent(json.dumps(chunks), f"the metadata of {png.name}")
    user_files = files_under(comfy.base / "user")
    assert any(p.name == "comfy.settings.json" for p in user_files)
    for path in user_files:
        absent(path.read_text(errors="replace"), str(path.relative_to(comfy.base)))
    config_file = tdl_user / "3dlabs" / "config.json"
    for path in files_under(tdl_user):
        if path != config_file:
            absent(path.read_text(errors="replace"), str(path.relative_to(tdl_user)))
    absent(comfy.log(), "the ComfyUI log")
    # Where it must be: the pack's config file, mode 0600.
    assert token in config_file.read_text()
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
