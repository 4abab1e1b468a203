"""Token sources, JWT refresh, config profiles and the config file's mode."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import time

import pytest

from conftest import pack_module

auth = pack_module("nodes.api.auth")
config = pack_module("nodes.api.config")
urls = pack_module("nodes.api.urls")
errors = pack_module("nodes.api.errors")


def make_jwt(exp: float) -> str:
    def enc(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'HS256'})}.{enc({'sub': 'user_1', 'exp': exp})}.c2lnbmF0dXJl"


def test_jwt_expiry_reads_exp_without_verifying():
    assert auth.jwt_expiry(make_jwt(1234.5)) == 1234.5
    assert auth.jwt_expiry("not-a-jwt") is None
    assert auth.jwt_expiry("a.b.c") is None


@pytest.mark.parametrize("url, expected", [
    ("https://www.3dlabs.it.com/api", "https://www.3dlabs.it.com/api"),
    ("https://www.3dlabs.it.com/api/", "https://www.3dlabs.it.com/api"),
    ("https://www.3dlabs.it.com", "https://www.3dlabs.it.com/api"),
    ("https://www.3dlabs.it.com/api/api", "https://www.3dlabs.it.com/api"),
    ("http://127.0.0.1:8787/api", "http://127.0.0.1:8787/api"),
])
def test_base_url_accepts_published_form_and_bare_origin(url, expected):
    assert urls.normalize_base_url(url) == expected


@pytest.mark.parametrize("url", ["", "ftp://x/api", "www.3dlabs.it.com"])
def test_bad_base_url_is_a_config_error(url):
    with pytest.raises(errors.ConfigError):
        urls.normalize_base_url(url)


def test_default_base_url_and_env_override(monkeypatch):
    assert config.load_settings().base_url == "https://www.3dlabs.it.com/api"
    monkeypatch.setenv("THREEDLABS_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("THREEDLABS_WORKSPACE_ID", "ws_x")
    s = config.load_settings()
    assert s.base_url == "http://127.0.0.1:9/api" and s.workspace_id == "ws_x"
    assert s.base_url_source == "env THREEDLABS_BASE_URL"


def test_env_token_wins_over_config_file(monkeypatch):
    config.update_config(profile_changes={"token": "file-token-abcdefgh1234"})
    assert auth.TokenProvider().get() == "file-token-abcdefgh1234"
    monkeypatch.setenv("THREEDLABS_TOKEN", "env-token-abcdefgh5678")
    assert auth.TokenProvider().get() == "env-token-abcdefgh5678"
    status = auth.describe_token()
    assert status == {"configured": True, "source": "env THREEDLABS_TOKEN", "last4": "5678", "kind": "token",
                      "bound_to": "https://www.3dlabs.it.com"}


def test_profiles_are_separate(monkeypatch):
    config.update_config(profile_changes={"token": "tok-default-aaaaaaaa", "base_url": "http://127.0.0.1:1/api"},
                         name="default")
    config.update_config(profile_changes={"token": "tok-studio-bbbbbbbb", "workspace_id": "ws_team"}, name="studio")
    assert auth.TokenProvider(profile="studio").get() == "tok-studio-bbbbbbbb"
    monkeypatch.setenv("THREEDLABS_PROFILE", "studio")
    s = config.load_settings()
    assert s.profile == "studio" and s.workspace_id == "ws_team"
    assert s.base_url == config.DEFAULT_BASE_URL
    config.update_config(profile_changes={"token": None}, name="studio")
    assert "token" not in config.read_profile("studio")


def test_config_file_is_private():
    path = config.update_config(profile_changes={"token": "secret-token-123456789"}).path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_broken_config_file_reads_as_empty():
    path = config.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert config.read_config_file() == {}
    assert auth.describe_token()["configured"] is False


def test_missing_token_is_an_auth_error_with_a_hint():
    with pytest.raises(errors.AuthError) as info:
        auth.TokenProvider().get()
    assert "THREEDLABS_TOKEN" in str(info.value)


def counting_command(tmp_path, ttl: float) -> str:
    """A token command that prints a JWT expiring in ``ttl`` s and counts its runs in a file."""
    counter = tmp_path / "runs"
    script = tmp_path / "mint.py"
    script.write_text(
        "import base64, json, pathlib, sys, time\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b'=').decode()\n"
        f"print(enc({{'alg': 'HS256'}}) + '.' + enc({{'exp': time.time() + {ttl}, 'n': n}}) + '.c2ln')\n"
    )
    return f"{sys.executable} {script}", counter


def test_token_command_is_cached_until_near_expiry(monkeypatch, tmp_path):
    cmd, counter = counting_command(tmp_path, ttl=3600)
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", cmd)
    provider = auth.TokenProvider()
    first = provider.get()
    assert provider.get() == first and counter.read_text() == "1"
    # A token within REFRESH_MARGIN of its exp is replaced before use.
    clock = [time.time() + 3600 - auth.REFRESH_MARGIN_SECONDS + 1]
    provider._clock = lambda: clock[0]
    assert provider.get() != first and counter.read_text() == "2"


def test_token_command_rerun_after_401(monkeypatch, tmp_path):
    cmd, counter = counting_command(tmp_path, ttl=3600)
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", cmd)
    provider = auth.TokenProvider()
    token = provider.get()
    assert provider.invalidate(token) is True
    assert provider.get() != token and counter.read_text() == "2"


def test_static_token_is_not_retried_after_401(monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN", "static-token-xyz-123456")
    assert auth.TokenProvider().invalidate("static-token-xyz-123456") is False


def test_failing_token_command_names_the_source_not_the_output(monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN_COMMAND", "echo leaked-secret-token-987654321 >&2; exit 3")
    with pytest.raises(errors.ConfigError) as info:
        auth.TokenProvider().get()
    message = str(info.value)
    assert "status 3" in message and "THREEDLABS_TOKEN_COMMAND" in message
    assert "leaked-secret-token-987654321" not in message
