"""The pack loads like ComfyUI loads it, with no network, and its layers keep to themselves."""

from __future__ import annotations

import ast

import pytest

from conftest import PACK_DIR, import_pack_in_fresh_process

NETWORK_SPY = """
    import socket
    calls = []
    def spy(self, *a, **k):
        calls.append(a)
        raise OSError("network use during import")
    socket.socket.connect = spy
    socket.create_connection = lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError("net"))
    socket.getaddrinfo = lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError("dns"))
"""
IMPORT_CHECKS = """
    assert len(module.NODE_CLASS_MAPPINGS) >= 8, module.NODE_CLASS_MAPPINGS
    assert module.WEB_DIRECTORY == "./web"
    assert not calls, calls
    assert not [m for m in sys.modules if m == "comfy" or m.startswith("comfy.")], "imported ComfyUI"
    print("OK", len(module.NODE_CLASS_MAPPINGS))
"""


def test_pack_imports_without_comfyui_and_without_network(tmp_path):
    proc = import_pack_in_fresh_process(tmp_path, before=NETWORK_SPY, after=IMPORT_CHECKS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK")


def imports_of(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level and node.module:
                names.add("." + node.module)
    return names


API_FILES = sorted((PACK_DIR / "nodes" / "api").glob("*.py"))
SANDBOX_FILES = sorted((PACK_DIR / "sandbox").glob("*.py"))
ALL_PACK_FILES = sorted(p for d in ("nodes", "sandbox") for p in (PACK_DIR / d).rglob("*.py")) + [
    PACK_DIR / "__init__.py"]


@pytest.mark.parametrize("path", API_FILES + SANDBOX_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_client_and_sandbox_know_no_torch_and_no_comfyui(path):
    forbidden = {"torch", "numpy", "comfy", "comfy_execution", "folder_paths", "server", "nodes"}
    found = imports_of(path) & forbidden
    assert not found, f"{path.name} imports {found}"
    if path.parent.name == "sandbox":
        assert not any(n.startswith(".nodes") or n == "nodes" for n in imports_of(path))


@pytest.mark.parametrize("path", ALL_PACK_FILES, ids=lambda p: str(p.relative_to(PACK_DIR)))
def test_layers(path):
    names = imports_of(path)
    knows_http = bool(names & {"requests", "urllib3", "aiohttp", "http"})
    knows_tensors = bool(names & {"torch", "numpy"})
    assert not (knows_http and knows_tensors), f"{path.name} knows both HTTP and tensors"
    if path.name != "comfy.py":
        assert not names & {"comfy", "comfy_execution", "folder_paths", "server"}, path.name
    text = path.read_text()
    assert '"""' in text.split("\n", 3)[0] + text.split("\n", 3)[1], f"{path.name} has no module docstring"


def test_nodes_package_init_is_empty_of_imports():
    assert not imports_of(PACK_DIR / "nodes" / "__init__.py")


def test_requirements_never_pin_torch_or_numpy():
    lines = [ln.split("#")[0].strip().lower() for ln in (PACK_DIR / "requirements.txt").read_text().splitlines()]
    assert not [ln for ln in lines if ln.startswith(("torch", "numpy"))]
    import tomllib

    project = tomllib.loads((PACK_DIR / "pyproject.toml").read_text())
    deps = [d.lower() for d in project["project"]["dependencies"]]
    assert not [d for d in deps if d.startswith(("torch", "numpy"))]
    comfy = project["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon", "requires-comfyui"} <= set(comfy)


PRIVATE_PILLOW = ("Image._", "ImageFile._", "Image.core", ".im =", "map_buffer", "_getencoder", "_getdecoder",
                  "Image.ID", "Image.OPEN")  # the plugin registry: walking it is relying on its layout


def test_no_private_pillow_attribute_anywhere_in_the_pack():
    """Decoding uses Pillow's public API only: a Pillow release must not be able to break it silently."""
    sources = [p for folder in ("nodes", "sandbox") for p in (PACK_DIR / folder).rglob("*.py")]
    sources.append(PACK_DIR / "__init__.py")
    found = [(p.name, probe) for p in sources for probe in PRIVATE_PILLOW if probe in p.read_text()]
    assert not found, found


def test_no_module_of_the_pack_is_over_400_lines():
    sources = [p for folder in ("nodes", "sandbox") for p in (PACK_DIR / folder).rglob("*.py")]
    long = {p.name: n for p in sources if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_every_node_has_search_aliases_for_todays_node_search():
    """Current cores read SEARCH_ALIASES (a list of strings) into the node search; 0.3.64 ignores them."""
    from conftest import load_pack

    mappings = load_pack().NODE_CLASS_MAPPINGS
    for node_id, cls in mappings.items():
        aliases = cls.__dict__.get("SEARCH_ALIASES")
        assert isinstance(aliases, list) and aliases and all(isinstance(a, str) and a.strip() for a in aliases), node_id
    found = {word: {n for n, c in mappings.items() if word in c.SEARCH_ALIASES}
             for word in ("storyboard", "topic to video", "flux", "scene images")}
    assert found["storyboard"] >= {"3DLabsStoryboardTimeline", "3DLabsStoryboardVideo"}, found
    assert found["topic to video"] >= {"3DLabsStory", "3DLabsScenePlan", "3DLabsStoryboardVideo"}, found
    assert "3DLabsImageGenerate" in found["flux"] & found["scene images"], found
