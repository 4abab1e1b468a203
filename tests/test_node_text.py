"""What a 3DLabs node shows after a run: a free re-run says it paid nothing (and shows the result it reused,
without the old "submitted ..." line), the status shows once, in the node's own box, and Image Generate's
pictures are handed to ComfyUI at their real size, so its preview is labelled 1344 x 768, not 512 x 293.

The browser half runs the extension's own modules under node with ComfyUI's app and api stubbed.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from fake_client import install
from PIL import Image

from conftest import PACK_DIR, load_pack, pack_module
from node_runner import call_node, image_args

comfy = pack_module("nodes.comfy")
clients = pack_module("nodes.clients")
spend = pack_module("nodes.spend")
node_js = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")


@pytest.fixture
def fake(monkeypatch, fast_polls):
    spend.reset_tallies()
    client = install(monkeypatch)
    yield client
    client.release.set()


def test_a_rerun_that_reuses_every_job_says_it_paid_nothing(fake):
    first = call_node("3DLabsImageGenerate", **image_args(["a", "b"]))["ui"]["text"][0]
    assert "submitted 2 image" in first
    spend.reset_tallies()  # the next prompt: ComfyUI's cache is gone (a restart), the journal is not
    again = call_node("3DLabsImageGenerate", **image_args(["a", "b"]))["ui"]["text"][0]
    assert "no new job, nothing paid; reused 2 paid before" in again, again
    assert "submitted" not in again and len(fake.posts) == 2


def test_nodes_with_text_ask_comfyui_to_send_it_again_when_reused_from_its_cache():
    # Current cores send a cached node's last output to the browser only for nodes that ask; without it a
    # template opened anew shows "unchanged" and no result at all.
    mappings = load_pack().NODE_CLASS_MAPPINGS
    asking = {name for name, cls in mappings.items() if getattr(cls, "HAS_INTERMEDIATE_OUTPUT", False)}
    assert asking == set(mappings) - {"3DLabsSceneSelect"}


def test_image_generate_hands_over_its_pictures_at_their_real_size(sandbox, fresh_runtime, monkeypatch, tmp_path):
    monkeypatch.setattr(comfy, "temp_directory", lambda: str(tmp_path))
    out = call_node("3DLabsImageGenerate", **image_args(["a lighthouse at dusk", "a harbour at dawn"]))
    images = out["result"][0]
    assert images.shape[1:3] == (768, 1344) and comfy.preview_size() < 1344
    shown = out["ui"]["images"]
    assert len(shown) == 2 and all(entry["type"] == "temp" and entry["subfolder"] == "" for entry in shown)
    for entry in shown:
        with Image.open(tmp_path / entry["filename"]) as picture:
            assert picture.size == (1344, 768), entry  # what the frontend's label reads (naturalWidth x naturalHeight)
    # Outside ComfyUI (no temp folder) the node still answers, with its text only.
    monkeypatch.setattr(comfy, "temp_directory", lambda: None)
    assert "images" not in call_node("3DLabsImageGenerate", **image_args(["a lighthouse at dusk"]))["ui"]


def test_job_wait_hands_over_the_pictures_it_collects_at_their_real_size(sandbox, fresh_runtime, monkeypatch,
                                                                           tmp_path):
    monkeypatch.setattr(comfy, "temp_directory", lambda: str(tmp_path))
    ids = call_node("3DLabsImageGenerate", **image_args(["a lighthouse at dusk"], wait=False))["result"][2]
    out = call_node("3DLabsJobWait", job_id=[ids], timeout_seconds=[60], unique_id=["8"])
    [entry] = out["ui"]["images"]
    with Image.open(tmp_path / entry["filename"]) as picture:
        assert picture.size == (1344, 768) == tuple(out["result"][1].shape[2:0:-1])
    story = call_node("3DLabsStory", topic="A harbour", max_minutes=1, provider="gemini", seed=0, unique_id="1")
    texts_only = call_node("3DLabsJobWait", job_id=[story["result"][2]], timeout_seconds=[60], unique_id=["8"])
    assert "images" not in texts_only["ui"]  # a story has no pictures: its placeholder is not shown


STUB_DOM = r"""
const element = () => ({ setAttribute() {}, append() {}, addEventListener() {}, style: {},
  classList: { toggle() {}, remove() {}, contains: () => false } });
globalThis.document = { getElementById: () => null, createElement: element, createTextNode: () => ({}),
                        head: { append() {} }, querySelectorAll: () => [] };
globalThis.Node = function () {};
const listeners = {};
globalThis.comfyAPI = {
  app: { app: { canvas: null, graph: null } },
  api: { api: { fetchApi: async () => ({ ok: false, status: 0, json: async () => null }),
                addEventListener(type, fn) { (listeners[type] ??= []).push(fn); } } },
};
globalThis.fire = (type, detail) => (listeners[type] ?? []).forEach((fn) => fn({ detail }));
"""

CHECK = r"""
import { decorateNodeType, watchRuns } from "./ext/web/lib/nodes.js";
import { CACHED_NOTE } from "./ext/web/lib/runtext.js";

const { app } = globalThis.comfyAPI.app;
const { api } = globalThis.comfyAPI.api;
function NodeType() {
  this.widgets = [{ name: "prompt", value: "a lighthouse" }, { name: "seed", value: 1, linkedWidgets: [] }];
  this.inputs = [];
  this.type = "3DLabsImageGenerate";
}
NodeType.prototype.addDOMWidget = function (name) {
  const w = { name, options: {}, value: "", element: null };
  this.widgets.push(w);
  return w;
};
decorateNodeType(NodeType, { name: "3DLabsImageGenerate" });
const make = (id) => {
  const node = new NodeType();
  node.id = id;
  node.onNodeCreated();
  return node;
};
let nodes = [make(3)];
app.graph = { get nodes() { return nodes; }, getNodeById: (id) => nodes.find((n) => String(n.id) === String(id)),
              links: new Map() };
watchRuns(api);
const box = (node) => node.widgets.find((w) => w.name === "3dlabs_output").value;
const out = {};

// A paid run: ComfyUI's status line appears, the pack hides it and shows the status in its own box.
fire("execution_start", { prompt_id: "p1" });
nodes[0].widgets.push({ name: "$$node-text-preview", value: "waiting for 1 job", options: {} });
fire("progress_text", { nodeId: "3", text: "3DLabs Image Generate: waiting for 1 job" });
const status = nodes[0].widgets.find((w) => w.name === "$$node-text-preview");
out.statusInBox = box(nodes[0]);
out.comfyStatusHidden = Boolean(status.hidden && status.options.hidden && status.computeLayoutSize().minHeight === 0);
const paid = "[SANDBOX] 1 image(s) of 1344x768 from 1 job(s).\n"
  + "3DLabs jobs this prompt: submitted 1 image; succeeded 1, failed 0, reused 0";
nodes[0].onExecuted({ text: [paid] });
out.afterPaid = box(nodes[0]);

// The same graph again: ComfyUI reuses the node (and older cores send no `executed` for it).
fire("execution_start", { prompt_id: "p2" });
fire("execution_cached", { nodes: ["3"], prompt_id: "p2" });
out.afterFree = box(nodes[0]);
// Current cores send the cached text again, too.
nodes[0].onExecuted({ text: [paid] });
out.afterFreeResent = box(nodes[0]);

// A template opened anew (a new node, the same inputs), reused from ComfyUI's cache at once.
nodes = [make(3)];
fire("execution_start", { prompt_id: "p3" });
fire("execution_cached", { nodes: ["3"], prompt_id: "p3" });
out.templateCached = box(nodes[0]);
out.note = CACHED_NOTE;
console.log(JSON.stringify(out));
"""


@node_js
def test_the_extension_says_a_free_rerun_paid_nothing_and_shows_the_status_once(tmp_path):
    shutil.copytree(PACK_DIR / "web" / "lib", tmp_path / "ext" / "web" / "lib")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "dom.js").write_text(STUB_DOM)
    (tmp_path / "check.js").write_text(CHECK)
    proc = subprocess.run(["node", "--import", "./dom.js", "check.js"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["statusInBox"] == "3DLabs Image Generate: waiting for 1 job" and out["comfyStatusHidden"], out
    assert "submitted 1 image" in out["afterPaid"]
    note = out["note"]
    assert "nothing paid" in note and "no new job" in note
    for key in ("afterFree", "afterFreeResent", "templateCached"):
        text = out[key]
        assert text.startswith(note), (key, text)
        assert "1 image(s) of 1344x768" in text, (key, text)  # the result it reused, shown again
        assert "submitted" not in text and "jobs this prompt" not in text, (key, text)  # not the old spend
