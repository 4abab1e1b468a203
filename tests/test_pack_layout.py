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


def test_the_pack_imports_without_loading_requests(tmp_path):
    """requests costs about 140 ms to import (docs/performance.md): the client, and all HTTP, load on first use."""
    proc = import_pack_in_fresh_process(tmp_path, after="""
        loaded = [m for m in ("requests", "urllib3") if m in sys.modules]
        assert not loaded, loaded
        print("OK")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]


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


# The registries of Pillow's plugins: public names, but walking them relies on their layout.
PILLOW_REGISTRY = {"ID", "OPEN", "SAVE", "SAVE_ALL", "MIME", "EXTENSION", "DECODERS", "ENCODERS"}
ATTRIBUTE_CALLS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """Where ``source`` reaches into another library's private state: ``x._name`` (also through getattr
    and friends, ``vars(x)`` or ``__dict__``) on anything but ``self``, ``cls``, ``super()`` or a name the
    module itself defines or imports from the pack (a relative import); and Pillow's plugin registries.

    A local variable holding one of the pack's own objects is flagged too: the pack calls its own
    objects' public methods, and so a pack object's underscore is never mistaken for a library's."""
    tree = ast.parse(source)
    own = {"self", "cls"}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            own.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.level:
            own.update((alias.asname or alias.name) for alias in node.names)

    def owned(value: ast.expr) -> bool:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
            return True
        return isinstance(value, ast.Name) and value.id in own

    def text(value) -> str | None:
        return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None

    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)[:80]}"
        if isinstance(node, ast.Attribute):
            if _private(node.attr) and not owned(node.value):
                found.append(where)
            elif node.attr in PILLOW_REGISTRY and ast.unparse(node.value).split(".")[-1] == "Image":
                found.append(where)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_CALLS:
            name = text(node.args[1]) if len(node.args) > 1 else None
            if name is not None and _private(name) and not owned(node.args[0]):
                found.append(where)
        elif isinstance(node, ast.Subscript) and (name := text(node.slice)) is not None and _private(name):
            container = node.value
            if (isinstance(container, ast.Attribute) and container.attr == "__dict__" or isinstance(container, ast.Call)
                    and isinstance(container.func, ast.Name) and container.func.id == "vars"):
                found.append(where)
    return found


def test_the_private_attribute_check_sees_what_it_must():
    """The check below on known cases, so that it cannot pass by seeing nothing."""
    flagged = {
        "sock = resp.raw._fp.fp.raw._sock": 2,
        "getattr(getattr(resp.raw, '_fp', None), 'fp', None)": 1,
        "conn = pool._get_conn()": 1,
        "vars(resp.raw)['_fp']": 1,
        "resp.raw.__dict__['_connection']": 1,
        "from PIL import Image\nfor ext, fmt in Image.EXTENSION.items(): pass": 1,
        "import PIL.Image\nPIL.Image.OPEN['PNG']": 1,
        "from urllib3 import util\nutil._has_ipv6": 1,
        "im.__transparency": 1,
    }
    clean = [
        "self._lock = threading.Lock()\nself._resp.close()",
        "class W:\n    @classmethod\n    def go(cls): return cls._watch",
        "from . import comfy\ncomfy._module('server')",
        "from .api import jobs as engine\nengine._private_helper()",
        "super()._setup()",
        "resp.raw.shutdown()\nImage.open(data, formats=('PNG',))\nImage.registered_extensions()",
        "type(x).__name__, x.__class__, obj.__dict__",
    ]
    for source, count in flagged.items():
        assert len(private_uses(source)) == count, (source, private_uses(source))
    for source in clean:
        assert private_uses(source) == [], (source, private_uses(source))


@pytest.mark.parametrize("path", sorted((PACK_DIR / "nodes").rglob("*.py")), ids=lambda p: str(p.relative_to(PACK_DIR)))
def test_no_private_attribute_of_a_library_in_nodes(path):
    """urllib3, http.client, requests and Pillow are used through their public API only: a release of one
    must not be able to break the pack silently (the download deadline is urllib3's HTTPResponse.shutdown)."""
    found = private_uses(path.read_text())
    assert not found, f"{path.relative_to(PACK_DIR)} reaches into private state: {found}"


def test_the_dependencies_name_the_urllib3_the_pack_needs():
    import tomllib

    deps = tomllib.loads((PACK_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [ln.split("#")[0].strip() for ln in (PACK_DIR / "requirements.txt").read_text().splitlines()]
    for source in (deps, listed):
        assert "urllib3>=2.3" in [d.split("#")[0].strip() for d in source], source  # HTTPResponse.shutdown()


def node_modules() -> set[str]:
    """The modules of nodes/ that define a node class (one with INPUT_TYPES): the leaves of the pack, named by
    their dotted path below nodes/ ("story", "storyboard.video")."""
    found = set()
    for path in (PACK_DIR / "nodes").rglob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(c, ast.ClassDef) and any(isinstance(f, ast.FunctionDef) and f.name == "INPUT_TYPES"
                                                   for f in c.body) for c in tree.body):
            found.add(".".join(path.relative_to(PACK_DIR / "nodes").with_suffix("").parts))
    return found


def pack_imports(module: str) -> set[str]:
    """Every module of nodes/ (dotted below nodes/) that one module imports, relative imports resolved."""
    package = module.split(".")[:-1]
    tree = ast.parse((PACK_DIR / "nodes" / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            if node.module:
                found.add(".".join(base + node.module.split(".")))
            else:  # "from . import comfy": each name is a module
                found.update(".".join(base + [alias.name]) for alias in node.names)
    return found


def test_node_modules_import_no_other_node_module():
    """A node module is a leaf: what two nodes share lives in a module named for it, never in one of them."""
    nodes = node_modules()
    assert {"story", "scenes", "generate", "wait", "projects", "recent_jobs", "storyboard.timeline_node",
            "storyboard.video_node"} <= nodes, nodes
    # The resolver works: levels 1 and 2, with and without a module name.
    assert pack_imports("storyboard.video") >= {"comfy", "storyboard.timeline", "api.errors"}
    for name in sorted(nodes):
        imported = pack_imports(name)
        assert not imported & (nodes - {name}), f"nodes/{name}.py imports the node module(s) {imported & nodes}"


def test_the_storyboard_is_its_own_part_of_the_pack():
    """Only the pack's entry point imports the storyboard: the other node modules do not change for it."""
    outside = [p for p in (PACK_DIR / "nodes").rglob("*.py") if "storyboard" not in p.parts]
    users = [p.name for p in outside if any(n.startswith("storyboard") or ".storyboard" in n for n in
                                            pack_imports(".".join(p.relative_to(PACK_DIR / "nodes")
                                                                  .with_suffix("").parts)))]
    assert not users, f"modules outside nodes/storyboard/ import it: {users}"
    assert (PACK_DIR / "nodes" / "storyboard" / "__init__.py").read_text().startswith('"""The storyboard')
