"""Nothing is paid twice, and nothing is paid for input that cannot make a picture.

Each test drives the real node classes against the bundled sandbox over HTTP on loopback and counts,
from the sandbox's own counters, how many jobs were paid for:

- a job 3DLabs answers 404 for in its first moments (the sandbox's ``job_404_seconds`` fault) is
  waited for, never replaced, when the same inputs are queued again (wait off then on, Cancel, crash);
- a generation node's seed is pinned: its spec asks for a control widget, and the web extension sets
  that widget to "fixed" on a node made fresh (checked here in Node.js with ComfyUI's modules stubbed;
  the real browser run is tests/test_browser_e2e.py);
- a prompt list over the job cap is refused before any memory, thread or request;
- a topic, prompt or other job-creating text that is only invisible characters, or holds a lone
  surrogate, is refused by name before anything is sent.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import PACK_DIR, journal_events, load_pack, pack_module
from node_runner import cancel_after, image_args, run

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
comfy = pack_module("nodes.comfy")
jobs_engine = pack_module("nodes.api.jobs")
endpoints = pack_module("nodes.api.endpoints")
reuse = pack_module("nodes.reuse")
run_mod = pack_module("nodes.run")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

pytestmark = pytest.mark.usefixtures("fresh_runtime")

POST_IMAGES = "POST /api/images/generate"


def paid(sandbox) -> tuple[int, int]:
    """(image POSTs that reached the sandbox, jobs it created): both must stay at one."""
    stats = sandbox.stats()
    return stats["requests"][POST_IMAGES], stats["jobs_created_total"]


# --- 1. an early 404 is not "gone" ---------------------------------------------------------------


def test_wait_off_then_wait_on_during_the_early_404_pays_once(sandbox):
    sandbox.set_faults(job_404_seconds=3.0)
    sandbox.job_seconds = 0.5
    job_id = run("3DLabsImageGenerate", **image_args(["a kite at dawn, early 404"], wait=False))[2]
    time.sleep(1.0)  # inside the job's first 404 seconds
    spend.reset_tallies()
    images, _, again, _image_list = run("3DLabsImageGenerate", **image_args(["a kite at dawn, early 404"]))
    assert again == job_id and images.shape == (1, 768, 1344, 3)
    assert paid(sandbox) == (1, 1)
    assert sandbox.stats()["faults_injected"]["job_404"] >= 1, "the early 404 never happened: no test"
    assert Journal().find(job_id)["state"] == "succeeded" and spend.tally().reused == 1


def test_cancel_during_the_early_404_then_queue_again_pays_once(sandbox):
    sandbox.set_faults(job_404_seconds=3.0)
    sandbox.job_seconds = 0.5
    args = image_args(["a kite, cancelled while 3DLabs still says 404"], aspect_ratio="1:1")
    with cancel_after(0.5), pytest.raises(comfy.LocalInterrupted):
        run("3DLabsImageGenerate", **args)
    [record] = Journal().recent(5)
    assert record["state"] == "submitted"
    spend.reset_tallies()
    images, _, job_id, _image_list = run("3DLabsImageGenerate", **args)
    assert job_id == record["id"] and images.shape == (1, 1024, 1024, 3)
    assert paid(sandbox) == (1, 1)


def test_crash_right_after_submitting_then_queue_again_pays_once(sandbox):
    """A process that died just after the POST left a journaled job 3DLabs does not show yet."""
    sandbox.set_faults(job_404_seconds=3.0)
    sandbox.job_seconds = 0.5
    prompt = "a kite, the process died after paying"
    client = clients.client_for()
    body = endpoints.image_body(prompt, provider="replicate", model="flux-schnell", aspect_ratio="16:9")
    key = reuse.request_key(client, endpoints.IMAGES, body, 0)
    job_id = client.submit_once(endpoints.IMAGES, "image", body, request_key=key, label=prompt).job_id
    clients.reset_clients()  # the new process has a client of its own
    _, _, again, _image_list = run("3DLabsImageGenerate", **image_args([prompt]))
    assert again == job_id and paid(sandbox) == (1, 1)


def _journal_unknown_job(job_id: str, prompt: str, age_seconds: float) -> None:
    """Journal a submitted image job for ``prompt`` that the sandbox never made, ``age_seconds`` ago."""
    client = clients.client_for()
    body = endpoints.image_body(prompt, provider="replicate", model="flux-schnell", aspect_ratio="16:9")
    journal_events({"event": "submitted", "id": job_id, "kind": "image", "time": time.time() - age_seconds,
                    "request": reuse.request_key(client, endpoints.IMAGES, body, 0), "profile": "",
                    "workspace": None, "base_url": client.settings.base_url, "label": prompt})


def test_a_job_still_unknown_after_the_grace_is_gone_and_paid_for_once_more(sandbox):
    prompt = "a kite, lost long ago"
    _journal_unknown_job("job_00000000000a11ce", prompt, age_seconds=120)
    _, _, job_id, _image_list = run("3DLabsImageGenerate", **image_args([prompt]))
    assert job_id != "job_00000000000a11ce" and paid(sandbox) == (1, 1)
    assert Journal().find("job_00000000000a11ce")["state"] == "gone"


def test_a_job_unknown_inside_its_grace_is_waited_for_and_gone_only_after_it(sandbox, monkeypatch):
    """Journaled a second ago, unknown to 3DLabs: waited for through the grace (counted from the
    journal's submit time), then reported; nothing is submitted in that run. Queued again after the
    grace, it is replaced once."""
    monkeypatch.setattr(jobs_engine, "NOT_FOUND_GRACE_SECONDS", 2.5)
    prompt = "a kite, never shown"
    _journal_unknown_job("job_00000000000b0b00", prompt, age_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(errors.JobFailedError) as info:
        run("3DLabsImageGenerate", **image_args([prompt]))
    waited = time.monotonic() - started
    assert "does not know" in str(info.value) and "job_00000000000b0b00" in str(info.value)
    assert 0.8 <= waited < 5.0, waited  # about the 1.5 s left of the grace, not a fresh 2.5 s or none
    assert paid(sandbox) == (0, 0)
    spend.reset_tallies()
    _, _, job_id, _image_list = run("3DLabsImageGenerate", **image_args([prompt]))
    assert job_id != "job_00000000000b0b00" and paid(sandbox) == (1, 1)


# --- 2. an unchanged graph run twice pays once ----------------------------------------------------

GENERATION_NODES = ("3DLabsStory", "3DLabsScenePlan", "3DLabsImageGenerate")


@pytest.mark.parametrize("node_id", GENERATION_NODES)
def test_generation_nodes_declare_a_seed_with_its_control_widget(node_id):
    # The web extension pins the control widget this option makes; the pinned frontend (1.27) accepts
    # only a boolean here (a string would rename the widget), so the default lives in the extension.
    kind, opts = N[node_id].INPUT_TYPES()["required"]["seed"]
    assert kind == "INT" and opts["control_after_generate"] is True and opts["default"] == 0
    assert node_id in _web_generation_nodes()


def _web_generation_nodes() -> str:
    return (PACK_DIR / "web" / "lib" / "nodes.js").read_text()


NODE_SCRIPT = r"""
import { decorateNodeType, GENERATION_NODES } from "./ext/web/lib/nodes.js";

function fakeNodeType(name) {
  function Node() {
    const seed = { name: "seed", value: 0, linkedWidgets: [] };
    const control = { name: "control_after_generate", value: "randomize" };  // the frontend's default
    seed.linkedWidgets.push(control);
    this.widgets = [{ name: "prompt", value: "x" }, seed, control];
  }
  Node.prototype.addDOMWidget = function (name) {
    const w = { name, options: {} };
    this.widgets.push(w);
    return w;
  };
  Node.prototype.addWidget = function (type, name, value) {
    const w = { name, value, options: {}, onClick() {} };
    this.widgets.push(w);
    return w;
  };
  Node.prototype.configure = function (info) {  // LiteGraph restores widgets_values positionally
    info.widgets_values.forEach((v, i) => { this.widgets[i].value = v; });
    this.onConfigure?.(info);
  };
  decorateNodeType(Node, { name });
  return Node;
}

const out = {};
for (const name of ["3DLabsStory", "3DLabsScenePlan", "3DLabsImageGenerate", "KSampler"]) {
  const Node = fakeNodeType(name);
  const fresh = new Node();  // LiteGraph.createNode: construct, then onNodeCreated
  fresh.onNodeCreated?.();
  const loaded = new Node();  // LGraph.configure: createNode, then configure() with the saved values
  loaded.onNodeCreated?.();
  loaded.configure({ widgets_values: ["x", 7, "randomize"] });
  out[name] = { fresh: fresh.widgets[2].value, loaded: loaded.widgets[2].value };
}
out.listed = [...GENERATION_NODES];
console.log(JSON.stringify(out));
"""

STUB_APP = "export const app = { canvas: null, graph: null };\n"
STUB_API = "export const api = { fetchApi: async () => ({ ok: false, status: 0, json: async () => null }), " \
           "addEventListener() {} };\n"
STUB_DOM = r"""
const element = () => ({ setAttribute() {}, append() {}, classList: { toggle() {} }, style: {} });
globalThis.document = { getElementById: () => null, createElement: element, createTextNode: () => ({}),
                        head: { append() {} } };
globalThis.Node = function () {};
// ComfyUI's frontend publishes its app and api objects here; the extension reads them from it.
globalThis.comfyAPI = {
  app: { app: { canvas: null, graph: null } },
  api: { api: { fetchApi: async () => ({ ok: false, status: 0, json: async () => null }), addEventListener() {} } },
};
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")
def test_the_web_extension_pins_a_fresh_nodes_seed_and_keeps_a_loaded_nodes_choice(tmp_path):
    """The extension's own code, with ComfyUI's app/api modules stubbed: a node made fresh (the node
    search, LiteGraph.createNode) gets "fixed"; a node loaded from a workflow keeps what was saved."""
    shutil.copytree(PACK_DIR / "web" / "lib", tmp_path / "ext" / "web" / "lib")
    # nodes.js imports "../../../scripts/app.js": from ext/web/lib that is tmp/scripts/app.js.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(STUB_APP)
    (tmp_path / "scripts" / "api.js").write_text(STUB_API)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "dom.js").write_text(STUB_DOM)
    (tmp_path / "check.js").write_text(NODE_SCRIPT)
    proc = subprocess.run(["node", "--import", "./dom.js", "check.js"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out.pop("listed")) == sorted(GENERATION_NODES)
    for name in GENERATION_NODES:
        assert out[name] == {"fresh": "fixed", "loaded": "randomize"}, (name, out[name])
    assert out["KSampler"] == {"fresh": "randomize", "loaded": "randomize"}  # other packs' nodes: untouched


# --- 3. the cap refuses before any memory, thread or request --------------------------------------


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.parametrize("count", [150, 10_000])
def test_a_prompt_list_over_the_cap_is_refused_before_memory_threads_or_requests(sandbox, monkeypatch, count):
    started: list[str] = []
    real_start = threading.Thread.start

    def spy(self, *args, **kwargs):
        started.append(self.name)
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", spy)
    # The pack's pool outlives a run (its workers may exist already): no work may reach it either.
    submitted: list = []
    real_submit = run_mod.submit
    monkeypatch.setattr(run_mod, "submit", lambda *a: submitted.append(a) or real_submit(*a))
    prompts = [f"scene {i}: a lighthouse on a cliff at dusk, wide shot" for i in range(count)]
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        began = time.monotonic()
        with pytest.raises(errors.JobCapError) as info:
            run("3DLabsImageGenerate", **image_args(prompts))
        elapsed = time.monotonic() - began
        time.sleep(0.5)  # a batch being prepared in the background would show by now
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    assert f"would submit {count} jobs" in str(info.value) and "cap of 50" in str(info.value)
    ours = [name for name in started if name.startswith("3dlabs")]
    assert ours == [], f"threads started before the cap refused: {ours}"
    assert submitted == [], "work went to the pack's pool before the cap refused"
    assert sandbox.stats()["requests_total"] == 0
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MB traced before the refusal"
    assert rss_growth < 50 * 2**20, f"RSS grew by {rss_growth / 2**20:.0f} MB"
    assert elapsed < 60.0, elapsed  # liveness only: the threads, requests and memory above are the checks


def test_the_cap_counts_only_what_would_be_paid_for(sandbox, monkeypatch):
    """Reused jobs do not count against the cap: 3 paid, then the same 3 plus 2 new under a cap of 2."""
    prompts = [f"a kite, take {i}" for i in range(3)]
    run("3DLabsImageGenerate", **image_args(prompts))
    monkeypatch.setenv("THREEDLABS_MAX_JOBS", "2")
    spend.reset_tallies()
    run("3DLabsImageGenerate", **image_args(prompts + ["a kite, take 3", "a kite, take 4"]))
    assert sandbox.stats()["jobs_created_total"] == 5
    spend.reset_tallies()
    with pytest.raises(errors.JobCapError):
        run("3DLabsImageGenerate", **image_args(prompts + [f"a boat, take {i}" for i in range(3)]))
    assert sandbox.stats()["jobs_created_total"] == 5


# --- 4. invisible or broken text is refused by name ----------------------------------------------

INVISIBLE = {
    "zero-width space": "\u200b",
    "byte order mark": "\ufeff",
    "word joiner": "\u2060",
    "zero-width joiners and spaces": "\u200b\u200c\u200d \u2060\ufeff",
    "no-break and ideographic spaces": "\u00a0\u3000\u2007",
    "line and paragraph separators": "\u2028\u2029",
    "control characters": "\x00\x07\x1b",
    "bidi marks": "\u200e\u200f\u202a\u202c",
    "hangul filler": "\u3164",
    "braille blank": "\u2800",
}
SURROGATE = "a lighthouse \ud800 at dusk"


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_an_invisible_prompt_is_refused_with_its_item_and_nothing_is_sent(sandbox, text):
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsImageGenerate", **image_args(["a kite", text, "a boat"]))
    message = str(info.value)
    assert "prompt" in message and "item 2" in message and "invisible" in message, message
    assert sandbox.stats()["requests_total"] == 0
    assert N["3DLabsImageGenerate"].VALIDATE_INPUTS(prompt=[text]) is not True


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_an_invisible_topic_is_refused_and_nothing_is_sent(sandbox, text):
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsStory", topic=text, max_minutes=1, provider="gemini", seed=0, unique_id="1")
    assert "topic" in str(info.value) and "invisible" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0
    assert "topic" in N["3DLabsStory"].VALIDATE_INPUTS(topic=text)


def test_a_lone_surrogate_is_refused_in_a_prompt_a_topic_and_a_story(sandbox):
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsImageGenerate", **image_args(["a kite", SURROGATE]))
    assert "prompt" in str(info.value) and "item 2" in str(info.value) and "U+D800" in str(info.value)
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsImageGenerate", **image_args([SURROGATE]))
    assert "prompt" in str(info.value) and "item" not in str(info.value) and "surrogate" in str(info.value)
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsStory", topic=SURROGATE, max_minutes=1, provider="gemini", seed=0, unique_id="1")
    assert "topic" in str(info.value) and "surrogate" in str(info.value)
    story = json.dumps({"title": "Clocks", "beats": [{"narration": "A fox \ud83d finds a clock."}]}, ensure_ascii=True)
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsScenePlan", story=story, max_minutes=1, seed=0, unique_id="2")
    assert "story" in str(info.value) and "surrogate" in str(info.value)
    assert sandbox.stats()["requests_total"] == 0


def test_an_invisible_video_model_is_refused_and_nothing_is_sent(sandbox):
    story = json.dumps({"title": "Clocks", "beats": [{"narration": "A fox finds a clock."}]})
    with pytest.raises(errors.ValidationError) as info:
        run("3DLabsScenePlan", story=story, max_minutes=1, seed=0, video_model="\u200b\u2060", unique_id="2")
    assert "video_model" in str(info.value)
    assert "video_model" in N["3DLabsScenePlan"].VALIDATE_INPUTS(video_model="\ufeff")
    assert N["3DLabsScenePlan"].VALIDATE_INPUTS(video_model="") is True
    assert sandbox.stats()["requests_total"] == 0


def test_a_dry_run_refuses_invisible_text_too(sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_DRY_RUN", "1")
    with pytest.raises(errors.ValidationError):
        run("3DLabsImageGenerate", **image_args(["\u200b"]))
    with pytest.raises(errors.ValidationError):
        run("3DLabsStory", topic="\u2060", max_minutes=1, provider="gemini", seed=0, unique_id="1")
    images = run("3DLabsImageGenerate", **image_args(["a kite"]))[0]  # a visible prompt still dry-runs
    assert images.shape == (1, 768, 1344, 3) and sandbox.stats()["requests_total"] == 0


def test_visible_text_with_invisible_characters_inside_still_passes():
    # Zero-width joiners inside emoji and scripts that need them are real text: only all-invisible is refused.
    assert endpoints.image_body("a family 👨\u200d👩\u200d👧 on a beach")["prompt"]
    assert endpoints.story_body("\u0915\u094d\u200d\u0937 \u2060a topic", 1)["topic"]
    assert N["3DLabsImageGenerate"].VALIDATE_INPUTS(prompt=["a kite"]) is True
