"""The token never leaks: not in output, exceptions, log records (DEBUG on everywhere), the journal,
saved PNGs, node outputs, or any request to a host other than the API's; the token route refuses
cross-origin writes; the config file that can hold the token is mode 0600.

The sandbox here accepts one distinctive static token that no token-shaped pattern matches, so
only the pack's own bookkeeping of secrets (redaction.register_secret) can mask it: a leak anywhere
shows up as the literal string, or as any 12-character piece of it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import stat
import sys
import traceback

import pytest
import requests
from PIL import Image

from conftest import load_pack, pack_module, start_sandbox
from node_runner import image_args as _image_args

pack = load_pack()
errors = pack_module("nodes.api.errors")
clients = pack_module("nodes.clients")
config = pack_module("nodes.api.config")
images_mod = pack_module("nodes.images")
spend = pack_module("nodes.spend")
Journal = pack_module("nodes.api.journal").Journal
N = pack.NODE_CLASS_MAPPINGS

SECRET = "zqLeakCanary4f9e2d7c1b8a6Q"  # matches no token-shaped pattern: only registration masks it

image_args = functools.partial(_image_args, aspect_ratio="1:1")


def pieces(secret: str, size: int = 12) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


class Evidence:
    """Everything a user, a log file or a shared workflow could show; checked for the secrets."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.blobs: list[tuple[str, bytes]] = []

    def text(self, where: str, value) -> None:
        self.texts.append((where, value if isinstance(value, str) else repr(value)))

    def error(self, where: str, err: BaseException) -> None:
        self.text(where + " str", str(err))
        self.text(where + " repr", repr(err))
        self.text(where + " args", repr(err.args))
        self.text(where + " traceback", "".join(traceback.format_exception(err)))
        for failure in getattr(err, "failures", []) or []:
            self.error(where + " failure", failure)

    def assert_clean(self, secrets: list[str]) -> None:
        assert self.texts, "nothing was collected"
        for secret in secrets:
            needles = pieces(secret)
            for where, text in self.texts:
                for needle in needles:
                    assert needle not in text, f"the token leaked into {where}: ...{needle}..."
            for where, blob in self.blobs:
                for needle in needles:
                    assert needle.encode() not in blob, f"the token leaked into {where}"


@pytest.fixture(scope="module")
def secret_sandbox():
    server = start_sandbox(job_seconds=0.2, static_tokens=[SECRET])
    yield server
    server.stop()


@pytest.fixture
def sandbox_s(secret_sandbox, monkeypatch, fresh_runtime):
    secret_sandbox.reset()
    monkeypatch.setenv("THREEDLABS_BASE_URL", secret_sandbox.api_url)
    monkeypatch.setenv("THREEDLABS_TOKEN", SECRET)
    return secret_sandbox


@pytest.fixture
def debug_logs(caplog):
    """DEBUG for the root, the pack's and urllib3's loggers, with a handler that formats tracebacks."""
    for name in (None, "3dlabs", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def run_full(node_id, **kwargs):
    node = N[node_id]()
    out = getattr(node, node.FUNCTION)(**kwargs)
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    return out


def collect_output(evidence: Evidence, name: str, out) -> tuple:
    """A node's whole answer (ui text and outputs); IMAGE outputs are saved to PNG and kept too."""
    ui = out.get("ui") if isinstance(out, dict) else None
    result = out["result"] if isinstance(out, dict) else out
    if ui:
        evidence.text(f"{name} ui", json.dumps(ui, default=str))
    for i, value in enumerate(result):
        if hasattr(value, "shape") and getattr(value, "ndim", 0) == 4 and value.shape[-1] == 3:
            for b in range(value.shape[0]):
                data = images_mod.tensor_to_png_bytes(value[b])
                evidence.blobs.append((f"{name} output {i} image {b} PNG", data))
                info = Image.open(io.BytesIO(data)).info
                evidence.text(f"{name} PNG metadata", json.dumps({k: str(v) for k, v in info.items()}))
        else:
            evidence.text(f"{name} output {i}", value if isinstance(value, str) else repr(value))
    return result


def expect_error(evidence: Evidence, name: str, exc_type, fn):
    with pytest.raises(exc_type) as info:
        fn()
    evidence.error(name, info.value)
    return info.value


def exercise_everything(sandbox, evidence: Evidence, token_for_errors: str | None = None) -> None:
    """The happy path through every node, then every failure path we can provoke."""
    out = run_full("3DLabsStory", topic="A lighthouse keeper's cat", max_minutes=1, provider="gemini", seed=0,
                   unique_id="1")
    story = collect_output(evidence, "Story", out)[0]
    collect_output(evidence, "Scene Plan", run_full("3DLabsScenePlan", story=story, max_minutes=1, seed=0,
                                                    unique_id="2"))
    collect_output(evidence, "Image Generate", run_full("3DLabsImageGenerate", **image_args(["a", "b"])))
    ids = collect_output(evidence, "Image Generate wait off",
                         run_full("3DLabsImageGenerate", **image_args(["c"], wait=False)))[2]
    collect_output(evidence, "Job Wait", run_full("3DLabsJobWait", job_id=[ids], timeout_seconds=[30]))
    collect_output(evidence, "Load Project", run_full("3DLabsLoadProject", project_id="proj_demo"))
    collect_output(evidence, "Projects", run_full("3DLabsProjects", refresh=0))
    collect_output(evidence, "Recent Jobs", run_full("3DLabsRecentJobs", limit=50))
    stats = sandbox.stats()
    assert stats["file_requests"] >= 7 and stats["file_requests_with_authorization"] == 0

    failures = [
        ({"fail_jobs": True}, errors.BatchError, lambda: run_full("3DLabsImageGenerate", **image_args(["d", "e"]))),
        ({"drop_after_create": True}, errors.MaybeSubmittedError,
         lambda: run_full("3DLabsImageGenerate", **image_args(["f"]))),
        ({"reset_rate": 1.0}, errors.NetworkError, lambda: run_full("3DLabsProjects", refresh=1)),
        ({"server_down": True}, errors.ServerError, lambda: run_full("3DLabsProjects", refresh=2)),
        ({"html_instead_of_json": 1.0}, errors.AuthError, lambda: run_full("3DLabsProjects", refresh=3)),
        ({"malformed_json": 1.0}, errors.ResponseFormatError, lambda: run_full("3DLabsProjects", refresh=4)),
        ({"redirect_to": f"{sandbox.file_url}/files/x.png"}, errors.ServerError,
         lambda: run_full("3DLabsProjects", refresh=5)),
        ({"redirect_to": "https://accounts.example.com/sign-in"}, errors.AuthError,
         lambda: run_full("3DLabsProjects", refresh=6)),
        ({"corrupt_images": True}, errors.ImageDecodeError,
         lambda: run_full("3DLabsImageGenerate", **image_args(["g"]))),
        ({"out_of_credits": True}, errors.OutOfCreditsError,
         lambda: run_full("3DLabsImageGenerate", **image_args(["h"]))),
    ]
    for faults, exc_type, fn in failures:
        sandbox.reset()
        sandbox.set_faults(retry_after=0, **faults)
        spend.reset_tallies()
        expect_error(evidence, f"{exc_type.__name__} under {faults}", exc_type, fn)
        assert sandbox.stats()["file_requests_with_authorization"] == 0
    sandbox.reset()
    if token_for_errors:
        sandbox.revoke(token_for_errors)
        expect_error(evidence, "revoked token", errors.AuthError, lambda: run_full("3DLabsProjects", refresh=7))
    evidence.text("journal", Journal().path.read_text(encoding="utf-8"))


def gather_logs_and_output(evidence: Evidence, caplog, capsys) -> None:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = caplog.records
    assert any(r.name.startswith("urllib3") and r.levelno == logging.DEBUG for r in records), "DEBUG was not on"
    for record in records:
        evidence.text(f"log record {record.name}", formatter.format(record))
        evidence.text(f"log record args {record.name}", repr(record.args))
    out, err = capsys.readouterr()
    evidence.text("stdout", out)
    evidence.text("stderr", err)
    # urllib3 logs URLs and statuses at DEBUG, never headers.
    assert not any("Authorization" in r.getMessage() or "Bearer" in r.getMessage() for r in records)


def test_static_token_never_leaks_with_debug_logging(sandbox_s, debug_logs, capsys):
    evidence = Evidence()
    exercise_everything(sandbox_s, evidence, token_for_errors=SECRET)
    gather_logs_and_output(evidence, debug_logs, capsys)
    evidence.assert_clean([SECRET])
    stats = sandbox_s.stats()
    assert stats["auth_failures"] == stats["requests_total"] == 1  # the revoked token: refused once, no retry


def test_the_leak_check_catches_a_partial_leak():
    evidence = Evidence()
    evidence.text("a message", f"header value 'Bearer ***{SECRET[5:]}'")
    with pytest.raises(AssertionError, match="leaked into a message"):
        evidence.assert_clean([SECRET])


def test_token_command_tokens_never_leak(sandbox_s, debug_logs, capsys, monkeypatch, tmp_path):
    """Short-lived JWTs from THREEDLABS_TOKEN_COMMAND (each one recorded by the command itself)."""
    minted = tmp_path / "minted.txt"
    script = tmp_path / "mint.py"
    url = f"{sandbox_s.origin}/__sandbox/token?ttl=30&format=text"
    script.write_text(
        "import urllib.request as u\n"
        f"t = u.urlopen(u.Request({url!r}, method='POST')).read().decode()\n"
        f"open({str(minted)!r}, 'a').write(t + '\\n')\n"
        "print(t)\n")
    monkeypatch.delenv("THREEDLABS_TOKEN")
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", f"{sys.executable} {script}")
    evidence = Evidence()
    exercise_everything(sandbox_s, evidence)
    gather_logs_and_output(evidence, debug_logs, capsys)
    tokens = [t for t in minted.read_text().split() if t]
    assert tokens and all(t.count(".") == 2 for t in tokens)
    evidence.assert_clean(tokens)


def test_no_request_to_another_host_carries_the_token(sandbox_s):
    """Images live on a CDN (the sandbox's file host); redirects are never followed."""
    run_full("3DLabsImageGenerate", **image_args(["a", "b", "c"]))
    run_full("3DLabsLoadProject", project_id="proj_demo")
    sandbox_s.set_faults(redirect_to=f"{sandbox_s.file_url}/files/anything.png")
    with pytest.raises(errors.ServerError):
        run_full("3DLabsProjects", refresh=0)
    stats = sandbox_s.stats()
    assert stats["file_requests"] == 7  # 3 generated + 4 project images; the redirect was not followed
    assert stats["file_requests_with_authorization"] == 0


def test_saved_png_carries_no_metadata_from_the_pack(sandbox_s):
    images = run_full("3DLabsImageGenerate", **image_args(["a kite"]))["result"][0]
    data = images_mod.tensor_to_png_bytes(images[0])
    assert Image.open(io.BytesIO(data)).info.keys() <= {"dpi", "gamma", "srgb"}
    assert SECRET.encode() not in data
    # What ComfyUI's SaveImage embeds is the prompt (node inputs) and the workflow: no node takes a token.
    for node_id, cls in N.items():
        spec = cls.INPUT_TYPES()
        for name in {**spec["required"], **spec.get("optional", {})}:
            assert not any(w in name.lower() for w in ("token", "key", "secret", "password")), (node_id, name)


def test_unsendable_token_is_refused_without_quoting_it(sandbox_s, monkeypatch):
    for bad in (SECRET[:10] + "\n" + SECRET[10:], SECRET[:10] + "\u201c" + SECRET[10:]):
        monkeypatch.setenv("THREEDLABS_TOKEN", bad)
        clients.reset_clients()
        with pytest.raises(errors.ConfigError) as info:
            run_full("3DLabsProjects", refresh=0)
        evidence = Evidence()
        evidence.error("unsendable token", info.value)
        for where, text in evidence.texts:
            assert SECRET[:10] not in text and SECRET[10:] not in text, where
    assert sandbox_s.stats()["requests_total"] == 0


# --- the config file and the token route ------------------------------------------------------


def test_config_file_is_0600_in_a_0700_folder_even_if_it_was_looser():
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    config.update_config(profile_changes={"token": SECRET})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    assert not leftovers, f"temporary files left beside the config: {leftovers}"


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_app_refuses_a_cross_origin_post(app, headers):
    answer = requests.post(app.url + "/3dlabs/token", json={"token": SECRET}, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert SECRET not in answer.text
    assert not config.config_path().exists(), "a refused request wrote the config file"


def test_app_stores_the_token_0600_and_never_echoes_it(app):
    same = {"Origin": app.url, "Sec-Fetch-Site": "same-origin"}
    answer = requests.post(app.url + "/3dlabs/token", json={"token": SECRET}, headers=same, timeout=30)
    assert answer.status_code == 200, answer.text
    status = requests.get(app.url + "/3dlabs/status", headers=same, timeout=30)
    for text in (answer.text, status.text):
        assert not any(p in text for p in pieces(SECRET))
    path = config.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["profiles"]["default"]["token"] == SECRET
