"""Writes example_workflows/*.json (ComfyUI's UI format) from compact graph descriptions.

Widget values are placed from each node's own input spec (the pack's INPUT_TYPES, and the recorded
spec of ComfyUI's core nodes), so the files always match the nodes' widgets positionally, including
the extra control_after_generate value. Seeds are "fixed": re-queueing an example never re-bills.
Thumbnails (<name>.jpg) are made from real sandbox output by tests/test_example_workflows.py's
opt-in real-ComfyUI run (``THREEDLABS_WRITE_THUMBNAILS=1``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from demo import load_pack  # noqa: E402

from workflow_format import CORE_NODES_FILE, load_core_specs, pack_specs, socket_inputs, widget_slots  # noqa: E402

OUT_DIR = ROOT / "example_workflows"
TOPIC = "A lighthouse keeper's cat who guides lost ships home through the fog"
# Said on every template card: the first thing a new user needs to know is that no account is needed.
SANDBOX = "Runs on the bundled sandbox without an account (Settings > 3DLabs)."
# The canvas a template should open readable on, and the zoom the frontend fits a template with: newer
# frontends fit a template into 75% of the canvas whatever its saved view. LiteGraph draws node text down
# to its low-quality threshold (0.6), so a template must open at READABLE_ZOOM or more: with all its
# inputs Storyboard Video is 820 tall in frontend 1.58, and a template holding it fits at 75-79%.
VIEW = (1600, 900)
FIT_ZOOM = 0.75
READABLE_ZOOM = 0.7
TITLE_HEIGHT = 30


@dataclass
class Out:
    node: Node
    slot: int


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[int, int]
    values: dict
    size: tuple[int, int] = (360, 200)
    title: str | None = None
    outputs: list = field(default_factory=list)

    def __getitem__(self, slot: int) -> Out:
        return Out(self, slot)


class Graph:
    def __init__(self, specs: dict, outputs: dict) -> None:
        self.specs = specs
        self.output_types = outputs
        self.nodes: list[Node] = []

    def add(self, type_: str, pos, box=(360, 200), title=None, **values) -> Node:
        # ``box`` is the node's size on the canvas ("size" is a widget of the storyboard nodes).
        node = Node(len(self.nodes) + 1, type_, pos, values, box, title)
        self.nodes.append(node)
        return node

    def to_ui(self, description: str) -> dict:
        links, ui_nodes = [], []
        out_links: dict[tuple[int, int], list[int]] = {}
        for node in self.nodes:
            for name, value in node.values.items():
                if isinstance(value, Out):
                    link_id = len(links) + 1
                    kind = self.output_types[value.node.type][value.slot]
                    links.append([link_id, value.node.id, value.slot, node.id, name, kind])
                    out_links.setdefault((value.node.id, value.slot), []).append(link_id)
        for order, node in enumerate(self.nodes):
            spec = self.specs[node.type]
            widgets = []
            for name, is_control in widget_slots(spec):
                if is_control:
                    widgets.append("fixed")
                    continue
                value = node.values.get(name)
                if isinstance(value, Out) or value is None:
                    value = _default(spec, name)
                widgets.append(value)
            inputs = []
            link_of = {link[4]: link for link in links if link[3] == node.id}
            for name, kind in socket_inputs(spec):
                link = link_of.get(name)
                inputs.append({"name": name, "type": kind, "link": link[0] if link else None})
            for name, _ in widget_slots(spec):
                if name in link_of and not any(i["name"] == name for i in inputs):
                    kind = _kind(spec, name)
                    inputs.append({"name": name, "type": kind, "widget": {"name": name}, "link": link_of[name][0]})
            for link in links:
                if link[3] == node.id:
                    link[4] = next(i for i, e in enumerate(inputs) if e["name"] == link[4])
            outputs = [{"name": n, "type": t, "links": out_links.get((node.id, i), []), "slot_index": i}
                       for i, (n, t) in enumerate(zip(self.output_names[node.type], self.output_types[node.type]))]
            entry = {"id": node.id, "type": node.type, "pos": list(node.pos), "size": list(node.size), "flags": {},
                     "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                     "properties": {"Node name for S&R": node.type}, "widgets_values": widgets}
            if node.title:
                entry["title"] = node.title
            ui_nodes.append(entry)
        return {"last_node_id": len(self.nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
                "groups": [], "config": {}, "extra": {"description": description, "ds": self.view()},
                "version": 0.4}

    def bounds(self) -> tuple[float, float, float, float]:
        """x, y, width, height of the nodes with their title bars, as the frontend measures them."""
        x0 = min(n.pos[0] for n in self.nodes)
        y0 = min(n.pos[1] - TITLE_HEIGHT for n in self.nodes)
        x1 = max(n.pos[0] + n.size[0] for n in self.nodes)
        y1 = max(n.pos[1] + n.size[1] for n in self.nodes)
        return x0, y0, x1 - x0, y1 - y0

    def view(self) -> dict:
        """The saved view: what newer frontends compute for a template anyway (fitted to 75% of a 1600x900
        canvas, centred), so that frontends restoring the saved view open it the same way."""
        x, y, w, h = self.bounds()
        scale = min(FIT_ZOOM * VIEW[0] / w, FIT_ZOOM * VIEW[1] / h, 1.0)
        offset = [round(-x - w / 2 + VIEW[0] / scale / 2), round(-y - h / 2 + VIEW[1] / scale / 2)]
        return {"scale": round(scale, 3), "offset": offset}


def _kind(spec, name):
    for section in ("required", "optional"):
        if name in (spec.get(section) or {}):
            kind = spec[section][name][0]
            return "COMBO" if isinstance(kind, list) else kind
    raise KeyError(name)


def _default(spec, name):
    for section in ("required", "optional"):
        if name in (spec.get(section) or {}):
            kind, opts = spec[section][name]
            if "default" in opts:
                return opts["default"]
            if isinstance(kind, list):
                return kind[0]
            if kind == "COMBO":
                return opts["options"][0]
            return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind]
    raise KeyError(name)


def storyboard_chain(graph: Graph, plan_at=(460, 80), images_at=(860, 80)) -> tuple[Node, Node, Node]:
    """Story -> Scene Plan -> Image Generate over the plan's prompts (sizes: what the nodes grow to)."""
    story = graph.add("3DLabsStory", (40, 80), (380, 362), topic=TOPIC, max_minutes=1, provider="gemini", seed=1)
    plan = graph.add("3DLabsScenePlan", plan_at, (360, 324), story=story[0], max_minutes=1, seed=1)
    images = graph.add("3DLabsImageGenerate", images_at, (380, 434), prompt=plan[1], provider="replicate",
                       model="flux-schnell", aspect_ratio="16:9", seed=1, wait=True)
    return story, plan, images


def storyboard_video(graph: Graph, video_at, save_at, timeline_at, images: Out, scene_plan: Out, motion: str,
                     prefix: str) -> None:
    """Storyboard Video (timed by the plan, full length, rendered while it is saved) -> SaveVideo, and its
    timeline text."""
    video = graph.add("3DLabsStoryboardVideo", video_at, (380, 380), images=images, scene_plan=scene_plan,
                      fps=24.0, motion=motion, transition="crossfade", crossfade_seconds=0.5, width=1344,
                      height=768)
    graph.add("SaveVideo", save_at, (380, 280), video=video[0], filename_prefix=prefix, format="auto",
              codec="auto")
    graph.add("PreviewAny", timeline_at, (380, 220), title="Timeline", source=video[1])


def graphs(specs, outputs, names):
    """Each template: its graph, laid out to open readable on a 1600x900 window, and its card's description."""
    g = {}

    def new():
        graph = Graph(specs, outputs)
        graph.output_names = names
        return graph

    # 1. Topic to storyboard: the chain on top, what becomes of its images below.
    s = new()
    story, plan, images = storyboard_chain(s)
    scaled = s.add("ImageScaleBy", (580, 594), (280, 110), image=images[0], upscale_method="bicubic", scale_by=2.0)
    s.add("SaveImage", (900, 594), (340, 240), images=scaled[0], filename_prefix="3dlabs/storyboard")
    s.add("PreviewAny", (40, 594), (500, 240), title="Story text", source=story[1])
    g["Topic to storyboard"] = (s, "Story, scene plan and one image per scene, upscaled 2x and saved. " + SANDBOX)

    # 2. Topic to video: three columns (story and plan; images and the timeline; the video and its file).
    v = new()
    _, plan, images = storyboard_chain(v, plan_at=(40, 522), images_at=(460, 80))
    storyboard_video(v, (880, 80), (880, 540), (460, 594), images[0], plan[0], "slow zoom in", "3dlabs/video")
    g["Topic to video"] = (v, "Story, scene plan and scene images become a 1344x768 MP4 timed by the plan. "
                              + SANDBOX)

    # 3. One prompt to one image.
    o = new()
    image = o.add("3DLabsImageGenerate", (40, 80), (400, 434), prompt="A lighthouse on a cliff at dusk, fog "
                  "rolling in, a small cat in the lit window, cinematic", provider="replicate", model="flux-dev",
                  aspect_ratio="1:1", seed=1, wait=True)
    scaled = o.add("ImageScaleBy", (480, 80), (300, 110), image=image[0], upscale_method="lanczos", scale_by=2.0)
    o.add("SaveImage", (820, 80), (420, 420), images=scaled[0], filename_prefix="3dlabs/image")
    g["One prompt to one image"] = (o, "One Flux image from one prompt, upscaled 2x and saved. " + SANDBOX)

    # 4. Submit now, collect later.
    c = new()
    submit = c.add("3DLabsImageGenerate", (40, 80), (400, 434), prompt="A paper boat sailing on a rain puddle, "
                   "macro photo", provider="replicate", model="flux-schnell", aspect_ratio="4:3", seed=1, wait=False)
    collect = c.add("3DLabsJobWait", (480, 80), (360, 266), job_id=submit[2], timeout_seconds=600)
    c.add("SaveImage", (880, 80), (420, 420), images=collect[1], filename_prefix="3dlabs/collected")
    c.add("PreviewAny", (40, 594), (400, 200), title="Job ids", source=submit[2])
    g["Submit now and collect later"] = (c, "Image jobs submitted now, collected later by Job Wait (also after a "
                                            "restart). " + SANDBOX)

    # 5. An existing project to video.
    p = new()
    project = p.add("3DLabsLoadProject", (40, 80), (380, 256), project_id="proj_demo")
    storyboard_video(p, (460, 80), (880, 80), (40, 416), project[2], project[1], "pan right", "3dlabs/project")
    g["Project to video"] = (p, "A 3DLabs project's scene images become an MP4 timed by its scene plan. "
                                + SANDBOX + " The sandbox has a demo project.")

    # 6. Topic to captioned short: vertical images, the storyboard at 1080x1920 with captions burned in and
    # the SRT beside the MP4 (three columns: the story and plan; the images and the file; the video).
    short = new()
    story = short.add("3DLabsStory", (40, 80), (400, 362), topic=TOPIC, max_minutes=1, provider="gemini", seed=1)
    plan = short.add("3DLabsScenePlan", (40, 500), (400, 324), story=story[0], max_minutes=1, seed=1)
    images = short.add("3DLabsImageGenerate", (480, 80), (400, 434), prompt=plan[1], provider="replicate",
                       model="flux-schnell", aspect_ratio="9:16", seed=1, wait=True)
    video = short.add("3DLabsStoryboardVideo", (920, 80), (400, 760), images=images[0], scene_plan=plan[0],
                      fps=24.0, motion="slow zoom in", transition="crossfade", crossfade_seconds=0.5,
                      size="1080x1920", fit="auto", captions="subtitle files and burned in", caption_box=True,
                      caption_outline=3)
    short.add("SaveVideo", (480, 560), (400, 280), video=video[0], filename_prefix="3dlabs/short", format="auto",
              codec="auto")
    g["Topic to captioned short"] = (short, "A vertical 1080x1920 short with the narration burned in as captions "
                                            "and an .srt beside the MP4. " + SANDBOX)
    return g


def main() -> int:
    pack, _ = load_pack()
    specs = {**load_core_specs(), **pack_specs(pack.NODE_CLASS_MAPPINGS)}
    core = json.loads(CORE_NODES_FILE.read_text())["nodes"]
    outputs = {name: list(n["output"]) for name, n in core.items()}
    names = {name: list(n["output_name"]) for name, n in core.items()}
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        outputs[name] = list(cls.RETURN_TYPES)
        names[name] = list(cls.RETURN_NAMES)
    OUT_DIR.mkdir(exist_ok=True)
    for name, (graph, info) in graphs(specs, outputs, names).items():
        path = OUT_DIR / f"{name}.json"
        path.write_text(json.dumps(graph.to_ui(info), indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
