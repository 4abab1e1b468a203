"""Starting a real ComfyUI with the pack linked in, for the opt-in end-to-end suites.

Used only when COMFYUI_PATH points at ComfyUI checkouts (several separated by ':', e.g. the oldest core the
pack supports and the current one: each suite then runs on each). A checkout's Python is COMFYUI_PYTHON, else
the checkout's .venv, else this interpreter. Nothing here imports ComfyUI into the test process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

COMFYUI_PATH = os.environ.get("COMFYUI_PATH", "").strip()
CHECKOUTS = tuple(dict.fromkeys(p.strip() for p in COMFYUI_PATH.split(os.pathsep) if p.strip()))
SKIP_REASON = (
    "COMFYUI_PATH is not set: the real-ComfyUI suite is skipped. Point it at ComfyUI checkouts "
    "(0.3.64 or newer, several separated by ':') with their requirements installed to run it."
)


def core_version(checkout: str) -> str:
    """The checkout's ComfyUI version (comfyui_version.py), or its folder name where it has none."""
    found = re.search(r'__version__\s*=\s*"([^"]+)"', _read(Path(checkout) / "comfyui_version.py"))
    return found.group(1) if found else Path(checkout).name


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def checkout_id(checkout: str) -> str:
    """A test id for a checkout: its core version."""
    return f"core-{core_version(checkout)}" if checkout else "no-comfyui"


# Module fixtures that start a ComfyUI take these params: one run of the module per checkout.
CHECKOUT_PARAMS = CHECKOUTS or ("",)


def has_option(checkout: str, option: str) -> bool:
    """Whether the checkout's ComfyUI knows a command-line option (options come and go between cores)."""
    return f'"{option}"' in _read(Path(checkout) / "comfy" / "cli_args.py")


def comfy_python(checkout: str | None = None) -> str:
    explicit = os.environ.get("COMFYUI_PYTHON", "").strip()
    if explicit and len(CHECKOUTS) <= 1:
        return explicit
    venv = Path(checkout or (CHECKOUTS[0] if CHECKOUTS else "")) / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(
        self, pack_dir: Path, base: Path, env: dict[str, str], front_end_root: str | Path | None = None,
        checkout: str | None = None, extra_nodes: tuple[Path, ...] = (), args: tuple[str, ...] = (),
    ) -> None:
        """``front_end_root``: a folder of frontend files served instead of the checkout's pinned
        comfyui-frontend-package (ComfyUI's --front-end-root). ``checkout``: which of COMFYUI_PATH's
        checkouts (the first by default). ``extra_nodes``: test-only custom node folders linked in too.
        ``args``: more of ComfyUI's command-line options."""
        self.checkout = checkout or CHECKOUTS[0]
        self.version = core_version(self.checkout)
        self.base = base
        self.front_end_root = str(front_end_root) if front_end_root else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        (base / "user").mkdir(parents=True, exist_ok=True)
        link = base / "custom_nodes" / "comfyui-3dlabs"
        if not link.exists():
            link.symlink_to(pack_dir, target_is_directory=True)
        for folder in extra_nodes:
            extra = base / "custom_nodes" / folder.name
            if not extra.exists():
                extra.symlink_to(folder, target_is_directory=True)
        self.log_path = base / "comfy.log"
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                comfy_python(self.checkout),
                str(Path(self.checkout) / "main.py"),
                "--cpu",
                "--listen",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--base-directory",
                str(base),
                "--database-url",
                f"sqlite:///{base / 'user' / 'comfyui.db'}",
            ]
            + (["--front-end-root", self.front_end_root] if self.front_end_root else [])
            + list(args),
            cwd=self.checkout,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early; log:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer in {timeout} s; log:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body=None, headers=None, raw: bool = False):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None and not (headers or {}).get("Content-Type"):
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
        return payload if raw else (json.loads(payload) if payload else None)

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body=None, headers=None):
        return self.request("POST", path, body if body is not None else {}, headers)

    def queue_prompt(self, prompt: dict, client_id: str = "pytest") -> str:
        try:
            return self.post("/prompt", {"prompt": prompt, "client_id": client_id})["prompt_id"]
        except urllib.error.HTTPError as err:
            raise AssertionError(f"/prompt refused: {err.read().decode()[:3000]}") from None

    def history(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.05) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if (
                entry
                and entry.get("status", {}).get("completed") is not None
                and (entry["status"].get("status_str") in ("success", "error"))
            ):
                return entry
            time.sleep(poll)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s; log tail:\n{self.log()[-3000:]}"
                             f"{self.thread_dump()}")

    def thread_dump(self) -> str:
        """Where ComfyUI's threads are, when py-spy is installed (a hang's diagnosis); else nothing."""
        import shutil

        if shutil.which("py-spy") is None or self.proc.poll() is not None:
            return ""
        dump = subprocess.run(["py-spy", "dump", "--pid", str(self.proc.pid)], capture_output=True, text=True,
                              timeout=60)
        return f"\nthreads of ComfyUI (py-spy dump):\n{dump.stdout[-12000:]}"

    def import_seconds(self, folder_name: str = "comfyui-3dlabs") -> float | None:
        for line in self.log().splitlines():
            # Current cores prefix each log line with a coloured level ("\x1b[32m[INFO]\x1b[0m").
            m = re.search(r"(?:^|\s)([0-9.]+) seconds(?: \(IMPORT FAILED\))?: (.*)$", line)
            if m and m.group(2).rstrip("/").endswith(folder_name):
                if "IMPORT FAILED" in line:
                    raise AssertionError(f"the pack failed to import:\n{self.log()[-4000:]}")
                return float(m.group(1))
        return None


def newest_frontend_root(cache_dir: Path) -> tuple[Path | None, str]:
    """The static folder of the newest comfyui-frontend-package, and how it was found (or why not).

    THREEDLABS_NEW_FRONTEND_ROOT names one; otherwise the newest wheel is fetched with
    ``pip download --no-deps`` into ``cache_dir`` (kept between runs) and unpacked there.
    """
    explicit = os.environ.get("THREEDLABS_NEW_FRONTEND_ROOT", "").strip()
    if explicit:
        root = Path(explicit)
        if (root / "index.html").exists():
            return root, f"THREEDLABS_NEW_FRONTEND_ROOT={root}"
        return None, f"THREEDLABS_NEW_FRONTEND_ROOT={root} has no index.html"
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(cache_dir),
                "comfyui-frontend-package",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        return None, f"pip download comfyui-frontend-package failed: {detail.strip()[-500:]}"
    wheels = sorted(
        cache_dir.glob("comfyui_frontend_package-*.whl"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in re.split(r"[.-]", p.name.split("-")[1])],
    )
    if not wheels:
        return None, f"pip download left no comfyui_frontend_package wheel in {cache_dir}"
    wheel = wheels[-1]
    target = cache_dir / wheel.stem
    root = target / "comfyui_frontend_package" / "static"
    if not (root / "index.html").exists():
        import zipfile

        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(target)
    if not (root / "index.html").exists():
        return None, f"{wheel.name} has no comfyui_frontend_package/static/index.html"
    return root, f"downloaded {wheel.name}"


def messages(entry: dict, kind: str) -> list[dict]:
    return [data for name, data in entry.get("status", {}).get("messages", []) if name == kind]


@contextmanager
def running_comfy(pack_dir: Path, base: Path, checkout: str, sandbox=None, env: dict | None = None, **kwargs):
    """A started ComfyUI on ``checkout`` with the pack (its own user directory under ``base``), pointed at
    ``sandbox`` (with its token) when one is given; stopped when the block ends. ``kwargs`` go to ComfyServer."""
    full = {"THREEDLABS_USER_DIR": str(base / "threedlabs-user"), **(env or {})}
    if sandbox is not None:
        full.update(THREEDLABS_BASE_URL=sandbox.api_url, THREEDLABS_TOKEN=sandbox.static_token)
    server = ComfyServer(pack_dir, base, full, checkout=checkout, **kwargs)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
