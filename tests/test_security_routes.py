"""The pack's routes under attack, over real HTTP: DNS rebinding, LAN clients without an Origin,
base URL changes, bad workspace ids, a broken config file and bad limits.

A scripted server (tests/scripted_server.py) stands in for the attacker's API: it answers like the
API would and notes every Authorization header it receives. The token must never arrive there unless
the user saved it for that very origin.
"""

from __future__ import annotations

import json

import pytest
import requests
from scripted_server import ScriptedServer, send_json

from conftest import pack_module

pytest.importorskip("aiohttp.web", reason="aiohttp (shipped with ComfyUI) is needed for the route tests")
pytestmark = pytest.mark.usefixtures("fresh_runtime")

SECRET = "zqRebindSecret5f4e3d2c1b0a9"
OFFICIAL = "https://www.3dlabs.it.com"


def attacker_api() -> ScriptedServer:
    """The attacker's API: answers like the API would (workspaces, no projects), records every header."""
    return ScriptedServer(lambda h, body: send_json(h, 200, {"sessions": []} if "session" in h.path
                                                    else [{"id": "ws_evil", "name": "evil"}]))


@pytest.fixture
def recorder():
    server = attacker_api()
    yield server
    server.stop()


def port_of(app) -> str:
    return app.url.rsplit(":", 1)[1]


def same_origin(app) -> dict:
    return {"Origin": app.origin, "Sec-Fetch-Site": "same-origin"}


def call(app, method, path, headers, body=None):
    if method == "GET":
        return requests.get(app.url + path, headers=headers, timeout=30)
    return requests.post(app.url + path, json=body, headers=headers, timeout=30)


def config_data() -> dict:
    path = pack_module("nodes.api.config").config_path()
    return json.loads(path.read_text()) if path.exists() else {}


def attack(app, headers, target_url) -> list:
    """Point the base URL at ``target_url``, then make the pack talk to it every way the routes allow."""
    answers = [call(app, "POST", "/3dlabs/settings", headers, {"base_url": target_url})]
    answers.append(call(app, "POST", "/3dlabs/test", headers, {}))
    answers.append(call(app, "GET", "/3dlabs/workspaces", headers))
    answers.append(call(app, "GET", "/3dlabs/projects", headers))
    return answers


# --- the attack -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["rebinding page", "LAN client without Origin"])
def test_an_attacker_never_gets_the_token(app, recorder, who):
    assert call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET}).status_code == 200
    port = port_of(app)
    if who == "rebinding page":  # DNS rebinding: the browser thinks it talks to evil.example
        headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}",
                   "Sec-Fetch-Site": "same-origin"}
    else:  # another machine on the LAN, with ComfyUI listening on loopback only
        headers = {"Host": f"192.0.2.7:{port}"}
    answers = attack(app, headers, recorder.api_url)
    assert recorder.authorizations() == [], f"the token reached the attacker's server ({who})"
    assert all(a.status_code == 403 and "Host" in a.json()["error"] for a in answers), [a.text for a in answers]
    assert "base_url" not in config_data().get("profiles", {}).get("default", {})
    assert all(SECRET not in a.text for a in answers)


@pytest.mark.parametrize("token_from", ["route", "env", "pre-origin config"])
def test_a_base_url_change_through_the_routes_never_carries_the_token(app, recorder, monkeypatch, token_from):
    """A local script (loopback Host, no Origin) passes the Host check; the token stays bound anyway."""
    if token_from == "route":
        call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET})
    elif token_from == "env":
        monkeypatch.setenv("THREEDLABS_TOKEN", SECRET)
    else:
        path = pack_module("nodes.api.config").config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"profiles": {"default": {"token": SECRET}}}))
    answers = attack(app, {}, recorder.api_url)
    assert answers[0].status_code == 200, answers[0].text
    assert recorder.authorizations() == [], f"the token from the {token_from} reached another origin"
    token = answers[0].json()["token"]
    assert token["configured"] is False and OFFICIAL in token["problem"]
    test = answers[1].json()
    assert test["ok"] is False and OFFICIAL in test["message"] and recorder.origin in test["message"]
    assert answers[2].status_code == 401 and answers[3].status_code == 401
    if token_from == "env":
        assert "THREEDLABS_TOKEN" in token["problem"] and "THREEDLABS_BASE_URL" in token["problem"]
    else:
        assert token["saved_for"] == OFFICIAL and token["needed_for"] == recorder.origin
        assert "save it again" in token["problem"]
        assert config_data()["profiles"]["default"]["token_origin"] == OFFICIAL
    assert all(SECRET not in a.text for a in answers)


def test_saving_the_token_again_binds_it_to_the_new_url(app, recorder):
    call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET})
    status = call(app, "POST", "/3dlabs/settings", same_origin(app), {"base_url": recorder.api_url}).json()
    assert status["token"]["configured"] is False
    assert status["token"]["saved_for"] == OFFICIAL and status["token"]["needed_for"] == recorder.origin
    again = call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET}).json()
    assert again["configured"] is True
    assert call(app, "POST", "/3dlabs/test", same_origin(app), {}).json()["ok"] is True
    assert recorder.authorizations() == [f"Bearer {SECRET}"]
    # Back to the official service: the token now belongs to the recorder's origin, not to 3DLabs.
    back = call(app, "POST", "/3dlabs/settings", same_origin(app), {"base_url": ""}).json()
    assert back["token"]["configured"] is False and back["token"]["saved_for"] == recorder.origin


def test_the_sandbox_choice_still_uses_the_sandbox_token(app):
    call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET})
    body = call(app, "POST", "/3dlabs/settings", same_origin(app), {"base_url": "sandbox"}).json()
    assert body["sandbox"]["in_use"] is True
    test = call(app, "POST", "/3dlabs/test", same_origin(app), {}).json()
    assert test["ok"] is True and "SANDBOX" in test["message"]


# --- the Host check ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "127.0.0.9", "[::1]"])
def test_loopback_hosts_are_accepted(app, host):
    answer = requests.get(app.url + "/3dlabs/status", headers={"Host": f"{host}:{port_of(app)}"}, timeout=30)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "192.0.2.7", "localhost.evil.example",
                                  "[2001:db8::1]", "0.0.0.0"])
def test_other_hosts_are_refused(app, host):
    answer = requests.get(app.url + "/3dlabs/status", headers={"Host": f"{host}:{port_of(app)}"}, timeout=30)
    assert answer.status_code == 403 and "Host" in answer.json()["error"]


def test_addresses_comfyui_listens_on_are_accepted(app, monkeypatch):
    comfy = pack_module("nodes.comfy")
    monkeypatch.setattr(comfy, "listen_hosts", lambda: ("192.0.2.7",))
    headers = {"Host": f"192.0.2.7:{port_of(app)}"}
    assert requests.get(app.url + "/3dlabs/status", headers=headers, timeout=30).status_code == 200
    headers = {"Host": f"evil.example:{port_of(app)}"}
    assert requests.get(app.url + "/3dlabs/status", headers=headers, timeout=30).status_code == 403


def test_plain_http_base_url_is_refused_for_other_hosts(app):
    answer = call(app, "POST", "/3dlabs/settings", same_origin(app), {"base_url": "http://api.example.com/api"})
    assert answer.status_code == 400 and "https" in answer.json()["error"]
    assert "http://api.example.com" in answer.json()["error"]
    assert not pack_module("nodes.api.config").config_path().exists()


# --- workspace ids, a broken config file, bad limits ----------------------------------------


@pytest.mark.parametrize("bad", ["ws_\u5de5\u4f5c", "ws\r\nX-Evil: 1", "ws\x00", "ws\u2014team", "a" * 201])
def test_settings_route_refuses_unsafe_workspace_ids(app, bad):
    answer = call(app, "POST", "/3dlabs/settings", same_origin(app), {"workspace_id": bad})
    assert answer.status_code == 400 and "workspace" in answer.json()["error"]
    assert not pack_module("nodes.api.config").config_path().exists()


def test_saving_over_a_broken_config_says_where_the_old_one_went(app):
    path = pack_module("nodes.api.config").config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"profiles": {"studio": {"token": "abc')
    answer = call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET})
    assert answer.status_code == 200, answer.text
    notice = answer.json()["notice"]
    kept = [p for p in path.parent.iterdir() if p.name.startswith("config.json.corrupt-")]
    assert len(kept) == 1 and kept[0].name in notice
    assert kept[0].read_text() == '{"profiles": {"studio": {"token": "abc'
    assert SECRET not in answer.text


@pytest.mark.parametrize("raw", ['"abc"', "1e400", "[1]"])
def test_bad_max_jobs_is_a_clear_status_not_a_500(app, raw):
    path = pack_module("nodes.api.config").config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"settings": {"max_jobs": ' + raw + "}}")
    status = requests.get(app.url + "/3dlabs/status", timeout=30)
    assert status.status_code == 200, status.text
    problem = status.json()["settings_error"]
    assert "max_jobs" in problem and str(path) in problem
    test = call(app, "POST", "/3dlabs/test", same_origin(app), {}).json()
    assert test["ok"] is False and "max_jobs" in test["message"]


# --- the sandbox-choice attack (issue 22): ComfyUI on --listen 0.0.0.0, a LAN client, a user who trusts the panel ----


def test_without_an_origin_the_base_url_cannot_change_while_comfyui_listens_beyond_loopback(app, recorder,
                                                                                           monkeypatch):
    """Step one of the sandbox-choice attack, from a LAN client (curl, a script): refused outright."""
    monkeypatch.setattr(pack_module("nodes.comfy"), "listen_hosts", lambda: ("0.0.0.0",))
    lan = {"Host": f"127.0.0.1:{port_of(app)}"}  # no Origin
    for choice in (recorder.api_url, "sandbox"):
        refused = call(app, "POST", "/3dlabs/settings", lan, {"base_url": choice})
        assert refused.status_code == 403 and "Origin" in refused.json()["error"], refused.text
    assert "base_url" not in config_data().get("profiles", {}).get("default", {})
    assert call(app, "POST", "/3dlabs/settings", lan, {"dry_run": True}).status_code == 200  # other settings: as before
    monkeypatch.setattr(pack_module("nodes.comfy"), "listen_hosts", lambda: ("127.0.0.1",))
    assert call(app, "POST", "/3dlabs/settings", lan, {"base_url": ""}).status_code == 200  # loopback only: as before


def test_the_sandbox_choice_attack_never_gets_the_token(app, recorder, sandbox_server, monkeypatch):
    """A LAN client that forges an Origin points the profile's base URL at its own server and picks the
    sandbox; the user, seeing SANDBOX, pastes the real token; the client switches back and presses Test.
    The token never arrives."""
    monkeypatch.setattr(pack_module("nodes.comfy"), "listen_hosts", lambda: ("0.0.0.0",))
    port = port_of(app)
    forged = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}
    assert call(app, "POST", "/3dlabs/settings", forged, {"base_url": recorder.api_url}).status_code == 200
    assert call(app, "POST", "/3dlabs/settings", forged, {"base_url": "sandbox"}).status_code == 200
    # The user pastes the real token while the panel says SANDBOX: refused, nothing saved.
    pasted = call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET})
    assert pasted.status_code == 409 and "choose the 3DLabs service" in pasted.json()["error"], pasted.text
    assert SECRET not in json.dumps(config_data()) and SECRET not in pasted.text
    # The user does as told: picks their API (here a trusted local stand-in) and saves the token there.
    sandbox = sandbox_server  # no environment set: the settings alone decide where requests go
    assert call(app, "POST", "/3dlabs/settings", same_origin(app), {"base_url": sandbox.api_url}).status_code == 200
    saved = call(app, "POST", "/3dlabs/token", same_origin(app), {"token": SECRET}).json()
    assert saved["configured"] and saved["bound_to"] == sandbox.origin  # the panel shows where it goes
    assert call(app, "GET", "/3dlabs/status", same_origin(app)).json()["token"]["bound_to"] == sandbox.origin
    # The client switches the base URL back to its server and presses Test: the token stays bound.
    answers = attack(app, forged, recorder.api_url)
    assert recorder.authorizations() == [], "the token reached the attacker's server"
    assert all(SECRET not in a.text for a in answers)
