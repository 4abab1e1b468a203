"""Opt-in: the sandbox-choice attack against a real ComfyUI listening on all interfaces (--listen 0.0.0.0).

A LAN client without an Origin cannot move the base URL; one that forges an Origin points it at its own
server (a recorder on loopback) and picks the sandbox; the user, in the panel, pastes the real token, is
refused while the sandbox is in use, picks the API and saves it there; the client switches back and asks
for a connection test and the workspace and project lists. The recorder must see the token 0 times.
Every request goes to 127.0.0.1: "the LAN" is played by what the requests carry, not where they come from.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from test_security_routes import SECRET, attacker_api

from comfyui_harness import CHECKOUT_PARAMS, COMFYUI_PATH, SKIP_REASON, checkout_id, running_comfy
from conftest import PACK_DIR

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON)]


@pytest.fixture(scope="module", params=CHECKOUT_PARAMS, ids=checkout_id)
def comfy(request, tmp_path_factory):
    with running_comfy(PACK_DIR, tmp_path_factory.mktemp("comfy-listen-all"), request.param,
                       args=("--listen", "0.0.0.0")) as server:
        yield server


def call(comfy, path, headers, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(comfy.url + path, data=data, method="GET" if body is None else "POST",
                                 headers={**headers, **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_the_sandbox_choice_attack_on_comfyui_listening_everywhere(comfy, sandbox_server):
    recorder = attacker_api()
    try:
        port = comfy.port
        lan = {"Host": f"127.0.0.1:{port}"}
        forged = {**lan, "Origin": f"http://127.0.0.1:{port}"}
        panel = {**forged, "Sec-Fetch-Site": "same-origin"}
        for choice in (recorder.api_url, "sandbox"):
            status, answer = call(comfy, "/3dlabs/settings", lan, {"base_url": choice})
            assert status == 403 and "Origin" in answer["error"], answer
        assert call(comfy, "/3dlabs/settings", forged, {"base_url": recorder.api_url})[0] == 200
        assert call(comfy, "/3dlabs/settings", forged, {"base_url": "sandbox"})[0] == 200
        status, answer = call(comfy, "/3dlabs/token", panel, {"token": SECRET})
        assert status == 409 and "choose the 3DLabs service" in answer["error"], answer
        assert call(comfy, "/3dlabs/settings", panel, {"base_url": sandbox_server.api_url})[0] == 200
        status, saved = call(comfy, "/3dlabs/token", panel, {"token": SECRET})
        assert status == 200 and saved["bound_to"] == sandbox_server.origin, saved
        assert call(comfy, "/3dlabs/settings", forged, {"base_url": recorder.api_url})[0] == 200
        answers = [call(comfy, "/3dlabs/test", forged, {}), call(comfy, "/3dlabs/workspaces", forged),
                   call(comfy, "/3dlabs/projects", forged), call(comfy, "/3dlabs/status", forged)]
        assert recorder.authorizations() == [], "the token reached the attacker's server"
        assert all(SECRET not in json.dumps(a) for a in answers)
        # A page reached by DNS rebinding (its own name in Host and Origin) is refused as before.
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        status, answer = call(comfy, "/3dlabs/settings", evil, {"base_url": recorder.api_url})
        assert status == 403 and "Host" in answer["error"], answer
        assert SECRET not in comfy.log()
    finally:
        recorder.stop()
