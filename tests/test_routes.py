"""The pack's server routes (nodes/routes.py) on a plain aiohttp app on loopback, without ComfyUI.

The same handlers ComfyUI mounts are attached to a fresh RouteTableDef and served on 127.0.0.1;
requests talks to them as the browser would. The config file lives in the per-test user dir.
"""

from __future__ import annotations

import json
import stat

import pytest
import requests

from conftest import import_pack_in_fresh_process, pack_module

web = pytest.importorskip("aiohttp.web", reason="aiohttp (shipped with ComfyUI) is needed for the route tests")
# No cached client or in-process sandbox survives a test (each test has its own user dir).
pytestmark = pytest.mark.usefixtures("fresh_runtime")

SECRET = "zqRouteSecret9f8e7d6c5b4a3210"  # not token-shaped, so only the registered-secret redaction could mask it


@pytest.fixture(scope="module")
def routes():
    return pack_module("nodes.routes")


def get(app, path, **kw):
    return requests.get(app.url + path, timeout=30, **kw)


def post(app, path, body, headers=None, **kw):
    hdrs = {"Origin": app.origin, "Sec-Fetch-Site": "same-origin"}
    hdrs.update(headers or {})
    return requests.post(app.url + path, json=body, headers=hdrs, timeout=30, **kw)


def config_file():
    return pack_module("nodes.api.config").config_path()


# --- token ------------------------------------------------------------------------------------


def test_status_never_contains_the_token(app):
    answer = post(app, "/3dlabs/token", {"token": SECRET})
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text
    assert answer.json() == {"configured": True, "source": "config file, profile default", "last4": SECRET[-4:],
                             "kind": "token", "bound_to": "https://www.3dlabs.it.com"}
    status = get(app, "/3dlabs/status")
    assert status.status_code == 200
    assert SECRET not in status.text
    assert SECRET[:-4] not in status.text
    body = status.json()
    assert body["token"]["configured"] is True and body["token"]["last4"] == SECRET[-4:]
    assert body["profile"] == "default"
    assert body["base_url"] == "https://www.3dlabs.it.com/api" and body["base_url_source"] == "default"
    assert body["dry_run"] is False and body["max_jobs"] == 50
    assert body["sandbox"] == {"chosen": False, "in_use": False, "running": False, "url": None}


def test_set_and_clear_token_in_a_0600_file(app):
    assert post(app, "/3dlabs/token", {"token": f"  {SECRET}\n"}).json()["configured"] is True
    path = config_file()
    data = json.loads(path.read_text())
    assert data["profiles"]["default"]["token"] == SECRET  # stripped
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    cleared = post(app, "/3dlabs/token", {"token": ""})
    assert cleared.json() == {"configured": False, "source": None, "last4": None, "kind": None}
    assert "token" not in json.loads(path.read_text())["profiles"]["default"]

    post(app, "/3dlabs/token", {"token": SECRET})
    assert post(app, "/3dlabs/token", {"token": None}).json()["configured"] is False
    assert SECRET not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},  # an Origin-less cross-site request is refused too
])
def test_cross_origin_posts_are_refused(app, headers):
    answer = requests.post(app.url + "/3dlabs/token", json={"token": SECRET}, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert "Refused" in answer.json()["error"]
    assert not config_file().exists(), "a refused request must not write the config file"
    for path, body in (("/3dlabs/settings", {"base_url": "sandbox"}), ("/3dlabs/test", {})):
        assert requests.post(app.url + path, json=body, headers=headers, timeout=30).status_code == 403
    assert get(app, "/3dlabs/status", headers=headers).status_code == 403  # no cross-site reads either


def test_same_origin_variants_are_accepted(app):
    port = app.url.rsplit(":", 1)[1]
    for headers in ({"Origin": f"http://127.0.0.1:{port}"}, {"Origin": f"HTTP://127.0.0.1:{port}"}, {},
                    {"Origin": "https://comfy.example.org", "X-Forwarded-Host": "comfy.example.org"}):
        answer = requests.post(app.url + "/3dlabs/token", json={"token": SECRET}, headers=headers, timeout=30)
        assert answer.status_code == 200, (headers, answer.text)
    assert requests.post(app.url + "/3dlabs/token", json={"token": SECRET}, timeout=30,
                         headers={"Origin": f"http://localhost:{port}"}).status_code == 403


@pytest.mark.parametrize("data,content_type", [
    (f"token={SECRET}", "application/x-www-form-urlencoded"),
    (json.dumps({"token": SECRET}), "text/plain"),
    (f"--b\r\nContent-Disposition: form-data; name=token\r\n\r\n{SECRET}\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),
])
def test_form_posts_are_refused(app, data, content_type):
    answer = requests.post(app.url + "/3dlabs/token", data=data, timeout=30,
                           headers={"Content-Type": content_type, "Origin": app.origin})
    assert answer.status_code == 415
    assert "JSON" in answer.json()["error"]
    assert not config_file().exists()


@pytest.mark.parametrize("body,words", [
    ({"token": "two words"}, "one word"),
    ({"token": "line\nbreak"}, "one word"),
    ({"token": 1234567890123}, "string"),
    ({"token": SECRET, "profile": "x"}, '{"token"'),
    ({}, '{"token"'),
    ({"token": "x" * 20000}, "longer"),
])
def test_token_validation(app, body, words):
    answer = post(app, "/3dlabs/token", body)
    assert answer.status_code == 400
    assert words in answer.json()["error"]
    assert SECRET not in answer.text


def test_an_oversized_body_is_a_json_error(app):
    answer = post(app, "/3dlabs/token", {"token": "x" * (2 * 1024 * 1024)})
    assert answer.status_code == 413 and set(answer.json()) == {"error"}


def test_bad_json_is_a_json_error(app):
    answer = requests.post(app.url + "/3dlabs/token", data="{nope", timeout=30,
                           headers={"Content-Type": "application/json", "Origin": app.origin})
    assert answer.status_code == 400 and answer.json() == {"error": "The request body is not valid JSON."}
    answer = post(app, "/3dlabs/settings", ["base_url"])
    assert answer.status_code == 400 and "object" in answer.json()["error"]


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body,words", [
    ({"base_url": "ftp://files.example/api"}, "not an http(s) URL"),
    ({"base_url": "not a url"}, "not an http(s) URL"),
    ({"base_url": 5}, "base_url must be a string"),
    ({"base_url": f"https://me:{SECRET}@api.example/api"}, "must not contain a user name or password"),
    ({"workspace_id": "has space"}, "workspace_id"),
    ({"dry_run": "yes"}, "dry_run must be true or false"),
    ({"max_jobs": 0}, "max_jobs"),
    ({"max_jobs": "5"}, "max_jobs"),
    ({"max_jobs": True}, "max_jobs"),
    ({"max_jobs": 2.5}, "max_jobs"),
    ({"token": SECRET}, "Unknown setting 'token'"),
    ({}, "No setting"),
])
def test_settings_validation(app, body, words):
    answer = post(app, "/3dlabs/settings", body)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert not config_file().exists()


def test_settings_are_written_and_reported(app):
    clients = pack_module("nodes.clients")
    before = clients.settings()
    cached = clients.client_for(before)  # a cached client for the default URL, which the change must drop
    answer = post(app, "/3dlabs/settings", {"base_url": "http://127.0.0.1:9/", "workspace_id": "ws_team",
                                            "dry_run": True, "max_jobs": 7})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["base_url"] == "http://127.0.0.1:9/api"  # normalized to the published form
    assert body["base_url_source"] == "profile default" and body["base_url_choice"] == "custom"
    assert body["workspace_id"] == "ws_team" and body["dry_run"] is True and body["max_jobs"] == 7
    assert clients.client_for(before) is not cached, "settings changes must reset the cached clients"
    assert clients.settings().base_url == "http://127.0.0.1:9/api"
    data = json.loads(config_file().read_text())
    assert data["profiles"]["default"] == {"base_url": "http://127.0.0.1:9/api", "workspace_id": "ws_team"}
    assert data["settings"] == {"dry_run": True, "max_jobs": 7, "use_sandbox": False}
    assert stat.S_IMODE(config_file().stat().st_mode) == 0o600

    body = post(app, "/3dlabs/settings", {"base_url": "", "workspace_id": None, "dry_run": False}).json()
    assert body["base_url"] == "https://www.3dlabs.it.com/api" and body["base_url_choice"] == "default"
    assert body["workspace_id"] is None and body["dry_run"] is False and body["max_jobs"] == 7


def test_token_and_settings_keep_each_other(app):
    post(app, "/3dlabs/token", {"token": SECRET})
    post(app, "/3dlabs/settings", {"workspace_id": "ws_1", "max_jobs": 3})
    status = get(app, "/3dlabs/status").json()
    assert status["token"]["configured"] and status["workspace_id"] == "ws_1" and status["max_jobs"] == 3


def test_env_overrides_are_named_never_shown(app, monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN", SECRET)
    monkeypatch.setenv("THREEDLABS_MAX_JOBS", "9")
    status = get(app, "/3dlabs/status")
    assert SECRET not in status.text
    body = status.json()
    assert body["token"]["source"] == "env THREEDLABS_TOKEN"
    assert body["env_overrides"] == ["THREEDLABS_TOKEN", "THREEDLABS_MAX_JOBS"]
    assert body["max_jobs"] == 9


def test_the_bundled_sandbox_serves_no_debug_routes(app):
    """The sandbox the settings start for a user: no page or LAN client may set faults or mint tokens."""
    assert post(app, "/3dlabs/settings", {"base_url": "sandbox"}).status_code == 200
    server = pack_module("nodes.sandbox_bridge").running()
    assert server is not None
    for path in ("/__sandbox/stats", "/__sandbox/faults", "/__sandbox/token"):
        assert requests.get(server.origin + path, timeout=30).status_code == 404, path
    for path in ("/__sandbox/faults", "/__sandbox/token?ttl=60&format=text", "/__sandbox/reset"):
        assert requests.post(server.origin + path, json={"server_down": True}, timeout=30).status_code == 404, path
    assert not server.faults.server_down
    assert post(app, "/3dlabs/test", {}).json()["ok"] is True


def test_sandbox_choice_starts_the_bundled_sandbox(app):
    answer = post(app, "/3dlabs/settings", {"base_url": "sandbox"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    sandbox = body["sandbox"]
    assert sandbox["chosen"] and sandbox["in_use"] and sandbox["running"]
    assert sandbox["url"].startswith("http://127.0.0.1:") and sandbox["url"].endswith("/api")
    assert body["base_url"] == sandbox["url"] and body["base_url_source"] == "bundled sandbox"
    assert body["base_url_choice"] == "sandbox"
    assert json.loads(config_file().read_text())["settings"]["use_sandbox"] is True
    assert get(app, "/3dlabs/status").json()["sandbox"]["running"] is True

    projects = get(app, "/3dlabs/projects")
    assert projects.status_code == 200 and projects.json(), projects.text
    test = post(app, "/3dlabs/test", {}).json()
    assert test["ok"] is True and "SANDBOX" in test["message"], test

    body = post(app, "/3dlabs/settings", {"base_url": "https://www.3dlabs.it.com"}).json()
    assert body["sandbox"]["chosen"] is False and body["sandbox"]["in_use"] is False
    assert body["base_url"] == "https://www.3dlabs.it.com/api"


def test_env_base_url_wins_over_the_sandbox_choice(app, monkeypatch):
    monkeypatch.setenv("THREEDLABS_BASE_URL", "http://127.0.0.1:9/api")
    body = post(app, "/3dlabs/settings", {"base_url": "sandbox"}).json()
    assert body["sandbox"] == {"chosen": True, "in_use": False, "running": False, "url": None}
    assert body["base_url"] == "http://127.0.0.1:9/api" and "THREEDLABS_BASE_URL" in body["env_overrides"]


# --- reading 3DLabs through the routes --------------------------------------------------------


def test_workspaces_and_projects_against_the_sandbox(app, sandbox):
    workspaces = get(app, "/3dlabs/workspaces")
    assert workspaces.status_code == 200, workspaces.text
    assert workspaces.json() and all(set(w) == {"id", "name"} and w["id"] for w in workspaces.json())
    projects = get(app, "/3dlabs/projects")
    assert projects.status_code == 200, projects.text
    rows = projects.json()
    assert rows and all(set(p) == {"id", "name", "created"} and p["id"] for p in rows)
    assert sandbox.static_token not in workspaces.text + projects.text


def test_errors_come_back_as_json_without_the_token(app, sandbox, monkeypatch):
    monkeypatch.setenv("THREEDLABS_TOKEN", SECRET)  # not a token the sandbox accepts
    answer = get(app, "/3dlabs/projects")
    assert answer.status_code == 401
    body = answer.json()
    assert set(body) == {"error"} and "token" in body["error"] and "Traceback" not in body["error"]
    assert SECRET not in answer.text
    monkeypatch.delenv("THREEDLABS_TOKEN")
    answer = get(app, "/3dlabs/workspaces")
    assert answer.status_code == 401 and "No 3DLabs token is configured" in answer.json()["error"]


@pytest.mark.parametrize(("error", "status"), [
    ("ConfigError", 400), ("ValidationError", 400), ("JobCapError", 400), ("AuthError", 401),
    ("OutOfCreditsError", 402), ("ForbiddenError", 403), ("NotFoundError", 404), ("RateLimitedError", 429),
    ("ServerError", 502), ("InvalidRequestError", 502), ("ResponseFormatError", 502), ("ImageDownloadError", 502),
    ("NetworkError", 504), ("MaybeSubmittedError", 504), ("MaybeSubmittedServerError", 504),
])
def test_each_error_names_the_status_the_routes_answer_with(error, status):
    assert getattr(pack_module("nodes.api.errors"), error).http_status == status


@pytest.mark.usefixtures("fast_retries")
def test_routes_answer_with_the_errors_own_status(app, sandbox, monkeypatch):
    sandbox.set_faults(server_down=True)
    answer = get(app, "/3dlabs/projects")
    assert answer.status_code == 502 and "server error" in answer.json()["error"]
    monkeypatch.setenv("THREEDLABS_BASE_URL", "http://127.0.0.1:9/api")
    pack_module("nodes.clients").reset_clients()
    answer = get(app, "/3dlabs/workspaces")
    assert answer.status_code == 504 and "Could not reach 3DLabs" in answer.json()["error"]


def test_connection_answers_in_words(app, sandbox, monkeypatch):
    good = post(app, "/3dlabs/test", {}).json()
    assert good["ok"] is True
    assert good["message"].startswith(f"Connected to {sandbox.api_url} as the token ending in …")
    assert "env THREEDLABS_TOKEN" in good["message"] and "workspace" in good["message"]
    assert sandbox.static_token not in json.dumps(good)

    monkeypatch.setenv("THREEDLABS_TOKEN", SECRET)
    bad = post(app, "/3dlabs/test", {})
    assert bad.status_code == 200
    assert bad.json()["ok"] is False and "did not accept the token" in bad.json()["message"]
    assert SECRET not in bad.text

    # The token set through the route (the settings panel's way) is the one used once env is unset.
    monkeypatch.delenv("THREEDLABS_TOKEN")
    assert "No 3DLabs token is configured" in post(app, "/3dlabs/test", {}).json()["message"]
    post(app, "/3dlabs/token", {"token": sandbox.static_token})
    via_file = post(app, "/3dlabs/test", {}).json()
    assert via_file["ok"] is True and "config file, profile default" in via_file["message"], via_file


def test_test_connection_reports_a_bad_configured_url(app, monkeypatch):
    monkeypatch.setenv("THREEDLABS_BASE_URL", "gopher://nowhere")
    answer = post(app, "/3dlabs/test", {}).json()
    assert answer["ok"] is False and "not an http(s) URL" in answer["message"]
    status = get(app, "/3dlabs/status").json()
    assert status["base_url"] is None and "not an http(s) URL" in status["settings_error"]


# --- registration -----------------------------------------------------------------------------


def test_register_mounts_every_route_once(routes):
    class FakePromptServer:
        def __init__(self):
            self.routes = web.RouteTableDef()

    server = FakePromptServer()
    routes.register(server)
    routes.register(server)
    mounted = sorted((r.method, r.path) for r in server.routes)
    assert mounted == sorted((m, "/3dlabs" + p) for m, p, _ in routes.ROUTES)


def test_pack_import_outside_comfyui_loads_no_aiohttp_and_no_routes(tmp_path):
    proc = import_pack_in_fresh_process(tmp_path, after="""
        assert "aiohttp" not in sys.modules, "aiohttp imported outside ComfyUI"
        assert name + ".nodes.routes" not in sys.modules, "routes imported outside ComfyUI"
        print("OK")
    """)
    assert proc.returncode == 0 and proc.stdout.startswith("OK"), proc.stderr[-3000:]
