"""ComfyUI's two workflow formats, as far as the example workflows need them.

Used by ``build_example_workflows.py`` to write them and by the tests to check and run them.

UI format (what the template browser opens and users save) keeps widget values positionally in
``widgets_values``; a widget with ``control_after_generate`` is followed by one extra value (its
control mode). API format (what ``POST /prompt`` takes) names every input. These helpers list a
node's widgets from its input spec and turn a UI graph into an API prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# The input specs of ComfyUI's core nodes, recorded from a real ComfyUI (kept with the tests' data).
CORE_NODES_FILE = Path(__file__).resolve().parent.parent / "tests" / "data" / "comfyui_core_nodes.json"


def normalize_spec(input_types: dict) -> dict:
    """INPUT_TYPES() of a node class, or an /object_info "input" entry, as plain JSON-like lists."""
    out = {}
    for section in ("required", "optional"):
        items = input_types.get(section) or {}
        out[section] = {name: [value[0], value[1] if len(value) > 1 else {}] for name, value in items.items()}
    return out


def is_widget(kind, opts: dict) -> bool:
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or (isinstance(kind, str) and kind in WIDGET_TYPES)


def widget_slots(spec: dict) -> list[tuple[str, bool]]:
    """(input name, is_control_value) for every widgets_values position, in order."""
    slots = []
    for section in ("required", "optional"):
        for name, (kind, opts) in (spec.get(section) or {}).items():
            if is_widget(kind, opts):
                slots.append((name, False))
                if opts.get("control_after_generate"):
                    slots.append((name, True))
    return slots


def socket_inputs(spec: dict) -> list[tuple[str, str]]:
    return [(name, kind) for section in ("required", "optional")
            for name, (kind, opts) in (spec.get(section) or {}).items() if not is_widget(kind, opts)]


def load_core_specs() -> dict:
    """The recorded specs of ComfyUI's core nodes, inputs in ComfyUI's own order (input_order)."""
    data = json.loads(CORE_NODES_FILE.read_text())
    specs = {}
    for name, node in data["nodes"].items():
        order = node.get("input_order") or {}
        ordered = {section: {key: node["input"][section][key] for key in order.get(section, node["input"].get(
            section, {}))} for section in ("required", "optional") if node["input"].get(section)}
        specs[name] = normalize_spec(ordered)
    return specs


def pack_specs(node_class_mappings: dict) -> dict:
    return {name: normalize_spec(cls.INPUT_TYPES()) for name, cls in node_class_mappings.items()}


def ui_to_api(workflow: dict, specs: dict) -> dict:
    """An API-format prompt for a UI-format workflow (nodes with mode 0 only)."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        spec = specs[node["type"]]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        for (name, is_control), value in zip(widget_slots(spec), values):
            if not is_control:
                inputs[name] = value
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                link = links[entry["link"]]
                inputs[entry["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
