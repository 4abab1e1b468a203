"""Security of the config and auth layer: tokens bound to their API origin, the token command's
secrets, workspace ids, a broken config file, bad limits and two processes writing the config.

Every test here plays a finding of the security review; each failed on the code before the fix.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
import traceback

import pytest

from conftest import PACK_DIR, pack_module
from node_runner import submit_job

auth = pack_module("nodes.api.auth")
config = pack_module("nodes.api.config")
errors = pack_module("nodes.api.errors")
client_mod = pack_module("nodes.api.client")
Journal = pack_module("nodes.api.journal").Journal

TOKEN = "zqBoundTokenSecret0123456789"
OFFICIAL = "https://www.3dlabs.it.com"
ELSEWHERE = "http://127.0.0.1:5555/api"


def chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception reachable through __cause__ / __context__."""
    seen, todo = [], [err]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def everything_about(err: BaseException) -> str:
    """All text an error carries: str, repr, the formatted traceback, and every attribute in its chain."""
    parts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    for e in chain(err):
        parts.append(repr(e))
        parts.append(repr(e.args))
        parts.extend(repr(v) for v in vars(e).values())
    return "\n".join(parts)


# --- a stored token belongs to the origin it was saved for ------------------------------------


def test_a_saved_token_records_its_origin():
    config.update_config(profile_changes={"token": TOKEN})
    assert config.read_profile()["token_origin"] == OFFICIAL
    config.update_config(profile_changes={"base_url": "http://127.0.0.1:7/api", "token": TOKEN}, name="lab")
    assert config.read_profile("lab")["token_origin"] == "http://127.0.0.1:7"
    config.update_config(profile_changes={"token": None}, name="lab")
    assert "token_origin" not in config.read_profile("lab")


def test_config_token_is_not_sent_where_env_base_url_points_elsewhere(monkeypatch):
    config.update_config(profile_changes={"token": TOKEN})
    assert auth.TokenProvider().get() == TOKEN
    monkeypatch.setenv("THREEDLABS_BASE_URL", ELSEWHERE)
    with pytest.raises(errors.AuthError) as info:
        auth.TokenProvider().get()
    message = str(info.value)
    assert OFFICIAL in message and "http://127.0.0.1:5555" in message and "again" in message
    assert TOKEN not in message
    status = auth.describe_token()
    assert status["configured"] is False
    assert status["saved_for"] == OFFICIAL and status["needed_for"] == "http://127.0.0.1:5555"
    assert TOKEN not in json.dumps(status)


def test_a_profile_base_url_change_leaves_the_token_behind():
    config.update_config(profile_changes={"token": TOKEN})
    config.update_config(profile_changes={"base_url": ELSEWHERE})
    with pytest.raises(errors.AuthError):
        auth.TokenProvider().get()
    assert auth.describe_token()["configured"] is False
    assert auth.TokenProvider(base_url=config.DEFAULT_BASE_URL).get() == TOKEN  # still good where it belongs


@pytest.mark.parametrize("var,value", [("THREEDLABS_TOKEN", TOKEN), ("THREEDLABS_TOKEN_COMMAND", f"echo {TOKEN}")])
def test_env_tokens_belong_to_env_base_url_or_the_official_origin(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    assert auth.TokenProvider().get() == TOKEN
    config.update_config(profile_changes={"base_url": ELSEWHERE})  # e.g. by the settings route
    with pytest.raises(errors.AuthError) as info:
        auth.TokenProvider().get()
    message = str(info.value)
    assert var in message and OFFICIAL in message and "THREEDLABS_BASE_URL" in message
    assert TOKEN not in everything_about(info.value)
    status = auth.describe_token()
    assert status["configured"] is False and var in status["problem"]
    monkeypatch.setenv("THREEDLABS_BASE_URL", ELSEWHERE)  # the env pair names the origin: sent there
    assert auth.TokenProvider().get() == TOKEN


def test_explicit_base_url_binds_the_provider(monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN", TOKEN)
    with pytest.raises(errors.AuthError):
        auth.TokenProvider(base_url=ELSEWHERE).get()
    sandbox_token = auth.TokenSource("token", TOKEN, "bundled sandbox", bound_to="http://127.0.0.1:5555")
    assert auth.TokenProvider(sandbox_token, base_url=ELSEWHERE).get() == TOKEN
    with pytest.raises(errors.AuthError):
        auth.TokenProvider(sandbox_token, base_url=config.DEFAULT_BASE_URL).get()


def test_a_token_saved_before_origins_keeps_its_old_url():
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profiles": {"default": {"token": TOKEN},
                                             "lab": {"token": TOKEN, "base_url": "http://127.0.0.1:7/api"}}}))
    assert auth.TokenProvider().get() == TOKEN  # no base URL: the official one
    assert auth.TokenProvider(profile="lab").get() == TOKEN  # its own custom URL
    config.update_config(profile_changes={"base_url": ELSEWHERE})  # a change pins the token to where it was
    assert config.read_profile()["token_origin"] == OFFICIAL
    with pytest.raises(errors.AuthError):
        auth.TokenProvider().get()
    config.update_config(profile_changes={"base_url": ELSEWHERE}, name="lab")
    assert config.read_profile("lab")["token_origin"] == "http://127.0.0.1:7"


# --- plain http only to this machine -------------------------------------------------------


@pytest.mark.parametrize("url", ["http://api.example.com/api", "http://10.0.0.5:8787", "http://127.0.0.1.evil.example/"])
def test_plain_http_base_url_is_refused_for_other_hosts(monkeypatch, url):
    monkeypatch.setenv("THREEDLABS_BASE_URL", url)
    with pytest.raises(errors.ConfigError) as info:
        config.load_settings()
    assert url.rstrip("/") in str(info.value) and "https" in str(info.value)


@pytest.mark.parametrize("url", ["http://localhost:8787", "http://127.0.0.2:9/api", "http://[::1]:9/api",
                                 "https://api.example.com/api"])
def test_loopback_http_and_https_are_fine(url):
    assert config.load_settings(base_url=url).base_url.endswith("/api")


# --- the token command ------------------------------------------------------------------------

CMD_SECRET = "cmdSecretXq7Zp0w9Lm3Kd8Rt"


def python_command(tmp_path, body: str) -> str:
    script = tmp_path / "cmd.py"
    script.write_text(textwrap.dedent(body))
    # The secret sits on the command line, as in `mint --api-key SECRET`.
    return f"{sys.executable} {script} --api-key {CMD_SECRET}"


def test_token_command_timeout_names_neither_command_nor_output(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    cmd = python_command(tmp_path, f"""
        import sys, time
        print({TOKEN!r}, flush=True)
        time.sleep(60)
    """)
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", cmd)
    monkeypatch.setattr(auth, "COMMAND_TIMEOUT_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(errors.ConfigError) as info:
        auth.TokenProvider().get()
    assert time.monotonic() - started < 30, "a hung command must be killed at the timeout, not waited for"
    text = everything_about(info.value)
    assert "did not finish" in str(info.value)
    assert CMD_SECRET not in text and TOKEN not in text
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert CMD_SECRET not in caplog.text and TOKEN not in caplog.text


def test_token_command_failing_to_start_names_no_command(monkeypatch):
    monkeypatch.setattr(auth, "_shell_argv", lambda command: [f"/nonexistent/{CMD_SECRET}", command])
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", f"mint --key {CMD_SECRET}")
    with pytest.raises(errors.ConfigError) as info:
        auth.TokenProvider().get()
    assert CMD_SECRET not in everything_about(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_token_command_failure_never_quotes_the_command(monkeypatch, tmp_path):
    cmd = python_command(tmp_path, """
        import sys
        print("usage error: " + " ".join(sys.argv), file=sys.stderr)
        sys.exit(2)
    """)
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", cmd)
    with pytest.raises(errors.ConfigError) as info:
        auth.TokenProvider().get()
    assert "status 2" in str(info.value)
    assert CMD_SECRET not in everything_about(info.value)


def test_token_command_output_is_capped(monkeypatch, tmp_path):
    cmd = python_command(tmp_path, f"""
        import sys
        sys.stdout.write("x" * 100 + "\\n")
        for _ in range(3000):
            sys.stdout.write("y" * 99 + "\\n")
        print({TOKEN!r})
    """)
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", cmd)
    with pytest.raises(errors.ConfigError) as info:
        auth.TokenProvider().get()
    assert "64 KiB" in str(info.value)
    assert TOKEN not in everything_about(info.value) and CMD_SECRET not in everything_about(info.value)


def test_token_source_repr_hides_the_value():
    source = auth.TokenSource("token", TOKEN, "env THREEDLABS_TOKEN")
    assert TOKEN not in repr(source) and TOKEN not in str(source)
    assert "env THREEDLABS_TOKEN" in repr(source)
    command = auth.TokenSource("command", f"mint --key {CMD_SECRET}", "env THREEDLABS_TOKEN_COMMAND")
    assert CMD_SECRET not in repr(command)


# --- workspace ids ----------------------------------------------------------------------------

BAD_IDS = ["ws_\u5de5\u4f5c", "ws\r\nX-Evil: 1", "ws\nx", "ws\x00", "ws\u2014team", "a" * 201, "ws/../x"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("where", ["env", "file", "argument"])
def test_bad_workspace_ids_are_refused_before_any_request(sandbox, tmp_path, monkeypatch, bad, where):
    journal = Journal(tmp_path / "jobs.sqlite3")
    kwargs = {}
    if where == "env":
        if "\x00" in bad:
            pytest.skip("an environment variable cannot hold a NUL")
        monkeypatch.setenv("THREEDLABS_WORKSPACE_ID", bad)
    elif where == "file":
        path = config.config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"profiles": {"default": {"workspace_id": bad}}}))
    else:
        kwargs["workspace_id"] = bad
    before = sandbox.stats()["requests_total"]
    with pytest.raises((errors.ConfigError, errors.ValidationError)) as info:
        client = client_mod.ThreeDLabsClient(config.load_settings(**kwargs), journal=journal)
        try:
            submit_job(client, "story", "A robot learns to paint", 1)
        finally:
            client.close()
    message = str(info.value)
    named = {"env": "THREEDLABS_WORKSPACE_ID", "file": str(config.config_path()), "argument": "argument"}[where]
    assert named in message and "workspace" in message
    assert sandbox.stats()["requests_total"] == before, "a request reached the sandbox"
    assert not journal.jobs(), "a phantom journal entry was written"


@pytest.mark.parametrize("good", ["ws_team", "org_2abcDEF", "team.a:b-c", "a" * 200])
def test_good_workspace_ids_pass(monkeypatch, good):
    monkeypatch.setenv("THREEDLABS_WORKSPACE_ID", good)
    assert config.load_settings().workspace_id == good


# --- a broken config file, bad limits -------------------------------------------------------


def test_saving_over_a_broken_config_keeps_the_old_file_aside(caplog):
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    broken = '{"profiles": {"studio": {"token": "' + TOKEN + '", "base_url": "https://studio.exa'
    path.write_text(broken)
    result = config.update_config(profile_changes={"token": "a-new-token-0123456789"})
    assert result.set_aside is not None and result.set_aside.name.startswith("config.json.corrupt-")
    assert result.set_aside.read_text() == broken, "the unreadable profiles must be kept"
    assert stat.S_IMODE(result.set_aside.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["profiles"]["default"]["token"] == "a-new-token-0123456789"
    assert result.set_aside.name in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("raw", ['"abc"', "1e400", "[1]", "-3", "2.5", '{"n": 1}', "true"])
def test_bad_max_jobs_in_the_file_is_a_config_error_naming_file_and_key(raw):
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"settings": {"max_jobs": ' + raw + "}}")
    with pytest.raises(errors.ConfigError) as info:
        config.load_settings()
    assert str(path) in str(info.value) and "max_jobs" in str(info.value)


def test_whole_number_max_jobs_in_the_file_still_works():
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"settings": {"max_jobs": 7.0}}')
    assert config.load_settings().max_jobs == 7


# --- two processes writing the config at once ---------------------------------------------------

WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from nodes.api import config
tag, n, start = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    pass
for i in range(n):
    config.update_config(profile_changes={"workspace_id": f"ws_{tag}_{i}", "token": f"token-{tag}-{i}-0123456789"},
                         name=f"{tag}{i}")
"""


def test_two_processes_writing_profiles_lose_none(tmp_path):
    n = 60
    env = dict(os.environ, THREEDLABS_USER_DIR=str(tmp_path / "user"))
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(PACK_DIR), tag, str(n), str(start)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    path = tmp_path / "user" / "3dlabs" / "config.json"
    profiles = json.loads(path.read_text())["profiles"]
    missing = [f"{tag}{i}" for tag in ("a", "b") for i in range(n) if f"{tag}{i}" not in profiles]
    assert not missing, f"{len(missing)} profiles lost: {missing[:10]}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
