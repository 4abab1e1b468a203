"""docs/openapi.yaml against the sandbox: every documented answer is produced over HTTP and validated.

For each documented (method, path, status) a scenario makes the sandbox give that answer, and the
JSON body is checked against the documented schema (OpenAPI 3.0 converted to JSON Schema). The
sandbox serves exactly the documented /api routes, no more and no fewer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from conftest import PACK_DIR, pack_module

api = pack_module("sandbox.api")
content = pack_module("sandbox.content")

SPEC = yaml.safe_load(Path(PACK_DIR, "docs", "openapi.yaml").read_text())
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
TIMEOUT = 10
_NOT_JSON_SCHEMA = {"nullable", "example", "examples", "discriminator", "readOnly", "writeOnly", "deprecated",
                    "xml", "externalDocs"}


# --- OpenAPI 3.0 -> JSON Schema ----------------------------------------------------------------


def resolve(node):
    """Follow a local ``$ref`` (schemas, responses, parameters, headers) to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def to_json_schema(node):
    """Inline $refs, drop OpenAPI-only keywords, and turn ``nullable: true`` into ``anyOf [.., null]``."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(resolve(node))
    converted = {}
    for key, value in node.items():
        if key.startswith("x-") or key in _NOT_JSON_SCHEMA:
            continue
        if key == "properties":  # property names are data, not keywords: never filter them
            converted[key] = {name: to_json_schema(schema) for name, schema in value.items()}
        else:
            converted[key] = to_json_schema(value)
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def validate(instance, schema) -> None:
    json_schema = to_json_schema(schema)
    jsonschema.Draft7Validator.check_schema(json_schema)
    jsonschema.Draft7Validator(json_schema).validate(instance)


def operations():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def documented_responses():
    return sorted((m, p, status) for m, p, op in operations() for status in op["responses"])


def request_schema(method, path):
    operation = SPEC["paths"][path][method.lower()]
    return operation["requestBody"]["content"]["application/json"]["schema"]


# --- helpers -----------------------------------------------------------------------------------


def auth(server, token=None, workspace=None):
    found = {"Authorization": f"Bearer {token or server.static_token}"}
    if workspace:
        found["x-workspace-id"] = workspace
    return found


def call(server, method, path, body=None, headers=None, params=None):
    for name, value in (params or {}).items():
        path = path.replace("{" + name + "}", value)
    return requests.request(method, server.origin + path, json=body, timeout=TIMEOUT,
                            headers=auth(server) if headers is None else headers)


def expired_token(server):
    token = server.issue_token(ttl=0.05)
    time.sleep(0.1)
    return token


STORY_BODY = {"topic": "a paper boat crossing a city", "maxMinutes": 1, "provider": "claude",
              "projectId": "proj_c"}
IMAGE_BODY = {"prompt": "a paper boat in a gutter river", "provider": "gemini", "model": "flux-schnell",
              "aspectRatio": "9:16", "projectId": "proj_c", "sceneNumber": 1}


def plan_body():
    story = content.story("a paper boat crossing a city", 1)
    return {"story": story, "maxMinutes": 1, "videoModel": "kling-2"}


VALID_BODIES: dict[str, Callable[[], dict]] = {
    "/api/claude/stories": lambda: dict(STORY_BODY),
    "/api/claude/scene-planning": plan_body,
    "/api/images/generate": lambda: dict(IMAGE_BODY),
}
INVALID_BODIES = {
    "/api/claude/stories": [
        {"maxMinutes": 1},
        {"topic": "x", "maxMinutes": 9},
        {"topic": "", "maxMinutes": 1},
        {"topic": "x", "maxMinutes": 1, "provider": "other"},
    ],
    "/api/claude/scene-planning": [{"maxMinutes": 1}, {"story": [], "maxMinutes": 1},
                                   {"story": {}, "maxMinutes": 0}],
    "/api/images/generate": [{**IMAGE_BODY, "aspectRatio": "2:1"}, {**IMAGE_BODY, "sceneNumber": 0},
                             {k: v for k, v in IMAGE_BODY.items() if k != "prompt"},
                             {**IMAGE_BODY, "provider": "dall-e"}],
}


def wait_done(server, job_id, answers, deadline=8.0):
    """Poll a job until it finishes, keeping every answer for validation."""
    end = time.monotonic() + deadline
    while True:
        answer = call(server, "GET", "/api/jobs/{jobId}", params={"jobId": job_id})
        answers.append(answer)
        body = answer.json()
        if body.get("status") in ("completed", "failed") or time.monotonic() > end:
            return body
        time.sleep(0.03)


def create_job(server, path, body):
    answer = call(server, "POST", path, body)
    assert answer.status_code == 200, answer.text
    return answer.json()["jobId"]


# --- scenarios: each returns the answers that must match the documented response ---------------


def ok_post(server, method, path):
    body = VALID_BODIES[path]()
    validate(body, request_schema(method, path))
    answers = [call(server, method, path, body)]
    assert server.stats()["jobs_created_total"] == 1
    return answers


def ok_job(server, method, path):
    answers = []
    story_id = create_job(server, "/api/claude/stories", VALID_BODIES["/api/claude/stories"]())
    story = wait_done(server, story_id, answers)
    plan_id = create_job(server, "/api/claude/scene-planning", {"story": story["result"], "maxMinutes": 1})
    wait_done(server, plan_id, answers)
    wait_done(server, create_job(server, "/api/images/generate", dict(IMAGE_BODY)), answers)
    wait_done(server, create_job(server, "/api/images/generate", {**IMAGE_BODY, "prompt": "FAIL"}), answers)
    for shape in ("output_list", "images_objects", "data_url", "b64", "nested"):
        server.set_faults(image_shape=shape)
        wait_done(server, create_job(server, "/api/images/generate", {**IMAGE_BODY, "aspectRatio": "1:1"}),
                  answers)
    server.set_faults(image_shape="url", envelope="rotate")
    rotating = create_job(server, "/api/images/generate", dict(IMAGE_BODY))
    for _ in range(15):
        answers.append(call(server, "GET", path, params={"jobId": rotating}))
    server.set_faults(envelope="rotate", hang_jobs=True)
    hung = create_job(server, "/api/claude/stories", dict(STORY_BODY))
    time.sleep(0.4)
    for _ in range(10):
        answers.append(call(server, "GET", path, params={"jobId": hung}))
    server.reset()
    return answers


def ok_session(server, method, path):
    answers = [call(server, method, path, params={"id": "proj_demo"})]
    wait_done(server, create_job(server, "/api/claude/stories", dict(STORY_BODY)), [])
    answers.append(call(server, method, path, params={"id": "proj_c"}))
    planning = {**plan_body(), "projectId": "proj_c"}
    wait_done(server, create_job(server, "/api/claude/scene-planning", planning), [])
    wait_done(server, create_job(server, "/api/images/generate", dict(IMAGE_BODY)), [])
    with_plan = call(server, method, path, params={"id": "proj_c"})
    assert any(scene["imageUrl"] is None for scene in with_plan.json()["scenes"])
    assert any(scene["imageUrl"] for scene in with_plan.json()["scenes"])
    answers.append(with_plan)
    team = auth(server, workspace="ws_team")
    answers.append(call(server, method, path, params={"id": "proj_demo"}, headers=team))
    return answers


def ok_list(server, method, path):
    wait_done(server, create_job(server, "/api/claude/stories", dict(STORY_BODY)), [])
    return [call(server, method, path), call(server, method, path, headers=auth(server, workspace="ws_team"))]


def ok_get(server, method, path):
    return [call(server, method, path)]


def bad_request(server, method, path):
    answers = []
    for body in INVALID_BODIES[path]:
        with pytest.raises(jsonschema.ValidationError):  # the document agrees that the body is invalid
            validate(body, request_schema(method, path))
        answers.append(call(server, method, path, body))
    assert server.stats()["jobs_created_total"] == 0
    return answers


def some_body(path):
    return VALID_BODIES[path]() if path in VALID_BODIES else None


def unauthorized(server, method, path):
    params = {"jobId": "job_x", "id": "proj_demo"}
    answers = [call(server, method, path, some_body(path), headers={}, params=params)]
    token = server.issue_token(ttl=60)
    server.revoke(token)
    answers.append(call(server, method, path, some_body(path), headers=auth(server, token), params=params))
    for answer in answers:
        assert answer.headers["x-clerk-auth-status"] == "signed-out"
    return answers


def workspace_denied(server, method, path):
    return [call(server, method, path, some_body(path), headers=auth(server, workspace="ws_elsewhere"),
                 params={"jobId": "job_x", "id": "proj_demo"})]


def signed_out(server, method, path):
    answer = call(server, method, path, some_body(path), headers=auth(server, expired_token(server)),
                  params={"jobId": "job_x", "id": "proj_demo"})
    assert answer.headers["x-clerk-auth-reason"] == "session-token-expired"
    assert answer.content == b""
    return [answer]


def not_found_or_signed_out(server, method, path):
    unknown = call(server, method, path, params={"jobId": "job_unknown", "id": "proj_unknown"})
    assert "x-clerk-auth-status" not in unknown.headers
    return [unknown, *signed_out(server, method, path)]


def too_many_requests(server, method, path):
    server.set_faults(error_rate=1.0, post_error_rate=1.0, fault_seed=3)
    for _ in range(40):
        answer = call(server, method, path, some_body(path), params={"jobId": "job_x", "id": "proj_demo"})
        if answer.status_code == 429:
            assert answer.headers["Retry-After"].isdigit()
            return [answer]
    raise AssertionError("no 429 in 40 tries")


def another_body(path):
    """A valid body that differs from VALID_BODIES[path]."""
    return {**VALID_BODIES[path](), **({"prompt": "another paper boat"} if "images" in path else {"maxMinutes": 2})}


def idempotency_key_reused(server, method, path):
    headers = {**auth(server), "Idempotency-Key": f"conformance {path}"}
    assert call(server, method, path, VALID_BODIES[path](), headers=headers).status_code == 200
    validate(another_body(path), request_schema(method, path))
    answers = [call(server, method, path, another_body(path), headers=headers)]
    assert server.stats()["jobs_created_total"] == 1
    return answers


SCENARIOS: dict[tuple[str, str, str], Callable] = {
    **{("POST", path, "200"): ok_post for path in VALID_BODIES},
    **{("POST", path, "400"): bad_request for path in VALID_BODIES},
    **{("POST", path, "422"): idempotency_key_reused for path in VALID_BODIES},
    ("GET", "/api/jobs/{jobId}", "200"): ok_job,
    ("GET", "/api/session/{id}", "200"): ok_session,
    ("GET", "/api/session/list", "200"): ok_list,
    ("GET", "/api/workspaces", "200"): ok_get,
    ("GET", "/api/jobs/{jobId}", "404"): not_found_or_signed_out,
    ("GET", "/api/session/{id}", "404"): not_found_or_signed_out,
}
_BY_STATUS = {"401": unauthorized, "403": workspace_denied, "404": signed_out, "429": too_many_requests}
for _method, _path, _status in documented_responses():
    if _status in _BY_STATUS:
        SCENARIOS.setdefault((_method, _path, _status), _BY_STATUS[_status])


# --- tests -------------------------------------------------------------------------------------


def test_document_is_openapi_3_0_and_every_ref_resolves():
    assert SPEC["openapi"].startswith("3.0.")

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                assert resolve(node) is not None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(SPEC)
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft7Validator.check_schema(to_json_schema(schema))


def test_request_fields_are_exactly_the_published_ones():
    fields = {path: set(resolve(request_schema("POST", path))["properties"]) for path in VALID_BODIES}
    assert fields == {
        "/api/claude/stories": {"topic", "maxMinutes", "projectId", "provider"},
        "/api/claude/scene-planning": {"story", "maxMinutes", "videoModel"},
        "/api/images/generate": {"prompt", "provider", "model", "aspectRatio", "projectId", "sceneNumber"},
    }


def test_assumed_shapes_are_marked_as_assumptions():
    schemas = SPEC["components"]["schemas"]
    for name in ("JobEnvelope", "Job", "Story", "ScenePlan", "ImageResult", "Session", "SessionSummary",
                 "Workspace", "WorkspaceList"):
        assert schemas[name].get("x-assumption") is True, name
    assert "assum" in SPEC["info"]["description"]


def test_bearer_auth_and_workspace_header_are_documented():
    scheme = SPEC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert SPEC["security"] == [{"bearerAuth": []}]
    header = SPEC["components"]["parameters"]["WorkspaceId"]
    assert (header["name"], header["in"]) == ("x-workspace-id", "header")


@pytest.mark.parametrize("path", sorted(VALID_BODIES))
def test_an_idempotency_key_replays_its_first_job_as_documented(sandbox, path):
    operation = SPEC["paths"][path]["post"]
    assert {resolve(p)["name"] for p in operation["parameters"]} == {"x-workspace-id", "Idempotency-Key"}
    replayed = resolve(operation["responses"]["200"])["headers"]["Idempotent-Replayed"]
    headers = {**auth(sandbox), "Idempotency-Key": "replay-me"}
    first, again = (call(sandbox, "POST", path, VALID_BODIES[path](), headers=headers) for _ in range(2))
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    validate(again.json(), SPEC["components"]["schemas"]["JobCreated"])
    validate(again.headers["Idempotent-Replayed"], resolve(replayed)["schema"])
    assert "Idempotent-Replayed" not in first.headers
    assert sandbox.stats()["jobs_created_total"] == 1


def test_documented_routes_are_exactly_the_served_routes():
    documented = {(method, path) for method, path, _ in operations()}
    served = {(route.method, route.template) for route in api.ROUTES}
    assert documented == served
    assert not any(path.startswith("/__sandbox") for path in SPEC["paths"])


def test_every_documented_operation_answers_and_nothing_else_does(sandbox):
    for method, path, _ in operations():
        answer = call(sandbox, method, path, some_body(path), params={"jobId": "job_x", "id": "proj_demo"})
        assert answer.status_code != 405
        assert answer.status_code != 404 or answer.json() != {"error": "Not found"}, (method, path)
    undocumented = [("GET", "/api/claude/stories"), ("DELETE", "/api/jobs/job_x"), ("PUT", "/api/workspaces"),
                    ("POST", "/api/session/list"), ("GET", "/api/audio/generate"), ("GET", "/api/session"),
                    ("GET", "/api/export/x"), ("POST", "/api/webhooks")]
    for method, path in undocumented:
        answer = call(sandbox, method, path, {} if method != "GET" else None)
        assert answer.status_code in (404, 405), (method, path)
        assert answer.json()["error"] in ("Not found", "Method not allowed")


def test_every_scenario_is_documented():
    assert set(SCENARIOS) == set(documented_responses())


@pytest.mark.parametrize("method,path,status", documented_responses())
def test_documented_response_matches_the_sandbox(sandbox, method, path, status):
    scenario = SCENARIOS.get((method, path, status))
    assert scenario is not None, f"no scenario produces {method} {path} -> {status}"
    response = resolve(SPEC["paths"][path][method.lower()]["responses"][status])
    media = response.get("content", {}).get("application/json")
    answers = scenario(sandbox, method, path)
    assert answers
    for answer in answers:
        assert answer.status_code == int(status), (answer.status_code, answer.text[:200])
        for name in response.get("headers", {}):
            if name.startswith("x-clerk") and status == "401":
                assert name in answer.headers
        if not answer.content:
            assert status == "404" and answer.headers.get("x-clerk-auth-status") == "signed-out"
            continue
        assert media is not None, f"{method} {path} {status} answered a body the document does not describe"
        assert answer.headers["Content-Type"].startswith("application/json")
        validate(answer.json(), media["schema"])
