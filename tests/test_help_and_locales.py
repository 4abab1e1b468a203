"""Help pages (web/docs) and translations (locales/) cover every node, input, output and setting.

ComfyUI's node help panel fetches ``/extensions/<pack>/docs/<NodeId>/<locale>.md`` and falls back to
``<NodeId>.md`` (the frontend's nodeHelpService). Translations come from ``locales/<lang>/*.json``,
merged by ComfyUI's ``CustomNodeManager.build_translations`` under ``nodeDefs`` / ``settings``; the
frontend looks them up as ``nodeDefs.<NodeId>.inputs.<input>.name``, ``nodeDefs.<NodeId>.outputs.<index>``
and ``settings.<setting id, dots as underscores>.name``.

The pack is loaded exactly as ComfyUI loads it, so these checks follow what is registered now. A node
being built may ship its pages and entries before it is registered: ``PENDING_NODES`` names the only
ids allowed to be documented while absent; once registered they are checked like every other node.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import PACK_DIR, load_pack

LANGS = ("en", "zh")
DOCS = PACK_DIR / "web" / "docs"
LOCALES = PACK_DIR / "locales"
SETTINGS_JS = PACK_DIR / "web" / "lib" / "settings.js"
PENDING_NODES = {"3DLabsStoryboardVideo"}

HEADINGS = {
    "en": ("Inputs", "Outputs", "Cost", "Errors", "Example"),
    "zh": ("输入", "输出", "费用", "错误", "示例"),
}


def _nodes() -> dict:
    return load_pack().NODE_CLASS_MAPPINGS


def _inputs(cls) -> dict[str, dict]:
    """Every required and optional input (hidden ones are not shown) -> its options."""
    spec = cls.INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            out[name] = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
    return out


def _outputs(cls) -> list[str]:
    return list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)


def _output_tooltips(cls) -> list[str]:
    return list(getattr(cls, "OUTPUT_TOOLTIPS", ()) or ())


def _json(lang: str, name: str) -> dict:
    path = LOCALES / lang / name
    assert path.is_file(), f"missing {path.relative_to(PACK_DIR)}"
    return json.loads(path.read_text(encoding="utf-8"))


def _normalize(key: str) -> str:
    """The frontend's normalizeI18nKey: dots become underscores."""
    return key.replace(".", "_")


_STRING = r'"((?:[^"\\]|\\.)*)"'


def _js_strings(expr: str) -> str:
    """A JS expression of string literals joined with ``+``, as one Python string."""
    return "".join(json.loads(f'"{s}"') for s in re.findall(_STRING, expr))


def _settings() -> dict[str, dict]:
    """Setting id -> {"name", "tooltip"} as registered in web/lib/settings.js."""
    js = SETTINGS_JS.read_text(encoding="utf-8")
    ids_block = re.search(r"export const IDS\s*=\s*\{(.*?)\};", js, re.S)
    assert ids_block, "web/lib/settings.js has no `export const IDS = {...};`"
    ids = dict(re.findall(r"(\w+)\s*:\s*" + _STRING, ids_block.group(1)))
    assert ids, "no setting ids found in web/lib/settings.js"
    defs = js[js.index("export function settingDefinitions") :]
    found = {}
    for chunk in re.split(r"\bid:\s*IDS\.", defs)[1:]:
        key = re.match(r"\w+", chunk).group(0)
        name = re.search(r"\bname:\s*" + _STRING, chunk)
        tooltip = re.search(r"\btooltip:\s*((?:" + _STRING + r"\s*\+?\s*)+)", chunk)
        found[ids[key]] = {
            "name": json.loads(f'"{name.group(1)}"') if name else None,
            "tooltip": _js_strings(tooltip.group(1)) if tooltip else None,
        }
    missing = set(ids.values()) - set(found)
    assert not missing, f"settings in IDS without a definition in settingDefinitions(): {sorted(missing)}"
    return found


def _filled(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- help pages ---------------------------------------------------------------------------------


def _help_pages():
    for node_id in _nodes():
        yield pytest.param(node_id, DOCS / f"{node_id}.md", "en", id=f"{node_id}-en")
        yield pytest.param(node_id, DOCS / node_id / "zh.md", "zh", id=f"{node_id}-zh")


@pytest.mark.parametrize(("node_id", "path", "lang"), list(_help_pages()))
def test_every_node_has_a_help_page_with_every_section_and_socket(node_id, path, lang):
    assert path.is_file(), f"{node_id} has no help page {path.relative_to(PACK_DIR)}"
    text = path.read_text(encoding="utf-8")
    headings = re.findall(r"^##\s+(.+?)\s*$", text, re.M)
    for heading in HEADINGS[lang]:
        assert heading in headings, f"{path.relative_to(PACK_DIR)} has no '## {heading}' section"
    cls = _nodes()[node_id]
    sections = re.split(r"^##\s+", text, flags=re.M)
    inputs_text = next(s for s in sections if s.startswith(HEADINGS[lang][0]))
    outputs_text = next(s for s in sections if s.startswith(HEADINGS[lang][1]))
    for name in _inputs(cls):
        assert f"`{name}`" in inputs_text, f"{path.relative_to(PACK_DIR)} does not describe the input `{name}`"
    for name in _outputs(cls):
        assert f"`{name}`" in outputs_text, f"{path.relative_to(PACK_DIR)} does not describe the output `{name}`"


def test_no_help_page_for_a_node_that_does_not_exist():
    known = set(_nodes()) | PENDING_NODES
    pages = {p.stem for p in DOCS.glob("*.md")} | {p.parent.name for p in DOCS.glob("*/*.md")}
    assert not pages - known, f"help pages for unknown nodes: {sorted(pages - known)}"
    for page in DOCS.glob("*/*.md"):
        assert page.stem in LANGS, f"{page.relative_to(PACK_DIR)}: the frontend looks up <NodeId>/<locale>.md"


# --- node translations --------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_node_input_and_output_is_translated(lang):
    defs = _json(lang, "nodeDefs.json")
    problems = []
    for node_id, cls in _nodes().items():
        entry = defs.get(node_id)
        if not isinstance(entry, dict):
            problems.append(f"{node_id}: no entry")
            continue
        for field in ("display_name", "description"):
            if not _filled(entry.get(field)):
                problems.append(f"{node_id}.{field} is empty")
        inputs = entry.get("inputs", {})
        for name, opts in _inputs(cls).items():
            item = inputs.get(name, {})
            if not _filled(item.get("name")):
                problems.append(f"{node_id}.inputs.{name}.name is empty")
            if opts.get("tooltip") and not _filled(item.get("tooltip")):
                problems.append(f"{node_id}.inputs.{name}.tooltip is empty")
        outputs = entry.get("outputs", {})
        tips = _output_tooltips(cls)
        for index, _name in enumerate(_outputs(cls)):
            item = outputs.get(str(index), {})
            if not _filled(item.get("name")):
                problems.append(f"{node_id}.outputs.{index}.name is empty")
            if index < len(tips) and tips[index] and not _filled(item.get("tooltip")):
                problems.append(f"{node_id}.outputs.{index}.tooltip is empty")
    assert not problems, f"locales/{lang}/nodeDefs.json: " + "; ".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_no_stale_node_translations(lang):
    defs = _json(lang, "nodeDefs.json")
    nodes = _nodes()
    stale = sorted(set(defs) - set(nodes) - PENDING_NODES)
    assert not stale, f"locales/{lang}/nodeDefs.json has entries for unknown nodes: {stale}"
    problems = []
    for node_id, cls in nodes.items():
        entry = defs.get(node_id, {})
        extra_inputs = set(entry.get("inputs", {})) - set(_inputs(cls))
        extra_outputs = set(entry.get("outputs", {})) - {str(i) for i in range(len(_outputs(cls)))}
        if extra_inputs:
            problems.append(f"{node_id} inputs {sorted(extra_inputs)}")
        if extra_outputs:
            problems.append(f"{node_id} outputs {sorted(extra_outputs)}")
        unknown_fields = set(entry) - {"display_name", "description", "inputs", "outputs"}
        if unknown_fields:
            problems.append(f"{node_id} fields {sorted(unknown_fields)}")
    assert not problems, f"locales/{lang}/nodeDefs.json has stale entries: " + "; ".join(problems)


def test_english_node_texts_are_the_nodes_own():
    """An English entry overrides the node's own text in the UI, so it must say exactly the same."""
    defs = _json("en", "nodeDefs.json")
    names = load_pack().NODE_DISPLAY_NAME_MAPPINGS
    problems = []
    for node_id, cls in _nodes().items():
        entry = defs.get(node_id, {})
        expected = {"display_name": names.get(node_id, node_id), "description": getattr(cls, "DESCRIPTION", "")}
        for field, want in expected.items():
            if entry.get(field) != want:
                problems.append(f"{node_id}.{field}")
        for name, opts in _inputs(cls).items():
            item = entry.get("inputs", {}).get(name, {})
            if item.get("name") != name or item.get("tooltip", "") != opts.get("tooltip", ""):
                problems.append(f"{node_id}.inputs.{name}")
        tips = _output_tooltips(cls)
        for index, name in enumerate(_outputs(cls)):
            item = entry.get("outputs", {}).get(str(index), {})
            want_tip = tips[index] if index < len(tips) else ""
            if item.get("name") != name or item.get("tooltip", "") != want_tip:
                problems.append(f"{node_id}.outputs.{index}")
    assert not problems, (
        "locales/en/nodeDefs.json differs from the nodes' own text (copy it from the code): " + ", ".join(problems)
    )


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_setting_is_translated_and_none_is_stale(lang):
    settings = _settings()
    table = _json(lang, "settings.json")
    wanted = {_normalize(sid) for sid in settings}
    problems = []
    for sid, spec in settings.items():
        entry = table.get(_normalize(sid), {})
        if not _filled(entry.get("name")):
            problems.append(f"{_normalize(sid)}.name is empty")
        if spec["tooltip"] and not _filled(entry.get("tooltip")):
            problems.append(f"{_normalize(sid)}.tooltip is empty")
    stale = sorted(set(table) - wanted)
    if stale:
        problems.append(f"entries for unknown settings {stale} (keys are setting ids with dots as underscores)")
    assert not problems, f"locales/{lang}/settings.json: " + "; ".join(problems)


def test_english_setting_texts_are_the_settings_own():
    table = _json("en", "settings.json")
    problems = [
        sid
        for sid, spec in _settings().items()
        if table.get(_normalize(sid), {}).get("name") != spec["name"]
        or table.get(_normalize(sid), {}).get("tooltip") != spec["tooltip"]
    ]
    assert not problems, f"locales/en/settings.json differs from web/lib/settings.js for {problems}"


@pytest.mark.parametrize("lang", LANGS)
def test_categories_are_translated(lang):
    main = _json(lang, "main.json")
    categories = {cls.CATEGORY.split("/")[0] for cls in _nodes().values()}
    for category in categories:
        assert _filled(main.get("nodeCategories", {}).get(category)), f"nodeCategories.{category} missing"
    js = SETTINGS_JS.read_text(encoding="utf-8")
    groups = set(re.findall(r'category\(\s*"([^"]+)"', js))
    root = re.search(r'const category = \(group, name\) => \[\s*"([^"]+)"', js)
    if root:
        groups.add(root.group(1))
    for group in groups:
        assert _filled(main.get("settingsCategories", {}).get(_normalize(group))), (
            f"locales/{lang}/main.json: settingsCategories.{_normalize(group)} missing"
        )
