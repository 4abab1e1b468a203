"""The tolerant readers: every response shape docs/openapi.yaml describes, read into concrete values.

Images are found by structure (any depth, scene order, no duplicates); answers with nothing readable
raise ResponseFormatError naming the keys seen. The readers' own layout is checked at the end.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import PACK_DIR, pack_module

readers = pack_module("nodes.api.readers")
models = pack_module("nodes.api.models")
errors = pack_module("nodes.api.errors")

RFE = errors.ResponseFormatError
ImageRef = models.ImageRef

# A 1x1 PNG, base64-encoded (starts like every PNG: "iVBORw0KGgo").
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
DATA_URL = "data:image/png;base64," + PNG_B64
URL = "https://cdn.example.com/out/1.png"
URL2 = "https://cdn.example.com/out/2.webp"


# --- status ------------------------------------------------------------------------------------

STATUS_CASES = [(word, canonical) for canonical, words in readers.STATUS_SYNONYMS.items() for word in words]


def test_job_states_are_named_constants():
    assert (models.QUEUED, models.RUNNING, models.SUCCEEDED, models.FAILED, models.CANCELED) == (
        "queued", "running", "succeeded", "failed", "canceled")
    assert tuple(readers.STATUS_SYNONYMS) == models.STATES
    assert models.TERMINAL == {models.SUCCEEDED, models.FAILED, models.CANCELED}


def test_status_vocabulary():
    assert readers.STATUS_SYNONYMS == {
        "queued": ("pending", "queued", "waiting", "created", "starting", "in_queue", "throttled"),
        "running": ("processing", "running", "in_progress", "generating", "started"),
        "succeeded": ("completed", "complete", "succeeded", "success", "done", "finished", "ready"),
        "failed": ("failed", "error", "errored", "rejected"),
        "canceled": ("canceled", "cancelled", "aborted", "expired"),
    }


@pytest.mark.parametrize("word,canonical", STATUS_CASES)
def test_every_status_synonym(word, canonical):
    assert readers.normalize_status(word) == canonical
    assert readers.normalize_status(word.upper()) == canonical
    assert readers.normalize_status(word.title()) == canonical
    assert readers.normalize_status(f"  {word}\n") == canonical
    # Known words win over the error/result hints.
    assert readers.normalize_status(word, has_error=True, has_result=True) == canonical


@pytest.mark.parametrize(
    "raw",
    ["In-Progress", "IN_PROGRESS", "in progress", "inprogress", "In Progress", "in.progress", "in__progress"],
)
def test_status_separators(raw):
    assert readers.normalize_status(raw) == "running"


@pytest.mark.parametrize("raw", ["IN-QUEUE", "In Queue", "inqueue"])
def test_status_in_queue_forms(raw):
    assert readers.normalize_status(raw) == "queued"


@pytest.mark.parametrize("raw", ["mystery", None, "", 42, True, ["done"], "   "])
def test_unknown_status(raw):
    assert readers.normalize_status(raw, has_error=True) == "failed"
    assert readers.normalize_status(raw, has_error=True, has_result=True) == "failed"
    assert readers.normalize_status(raw, has_result=True) == "succeeded"
    assert readers.normalize_status(raw) == "queued"
    assert readers.normalize_status(raw, has_progress=True) == "running"


def test_status_as_object():
    assert readers.normalize_status({"state": "DONE"}) == "succeeded"
    assert readers.normalize_status({"name": "processing"}) == "running"


# --- progress ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (0.42, 0.42),
        (42, 0.42),
        (42.5, 0.425),
        ("42%", 0.42),
        ("42 %", 0.42),
        (" 42% ", 0.42),
        ("0.42", 0.42),
        ("42", 0.42),
        ("100%", 1.0),
        ("1%", 0.01),
        ("0.5%", 0.005),
        (0, 0.0),
        (0.0, 0.0),
        (1, 1.0),  # ambiguous: read as the fraction 1.0, not as 1%
        (1.0, 1.0),
        ("1", 1.0),
        (100, 1.0),
        (-5, 0.0),
        (-0.5, 0.0),
        ("-5", 0.0),
        (150, 1.0),
        ("150%", 1.0),
        (10**400, 1.0),
        ("3/10", 0.3),
        ("15/10", 1.0),
        ({"percent": 42}, 0.42),
        ({"percentage": "x"}, None),
        ({"progress": 0.25}, 0.25),
        ({"value": "42%"}, 0.42),
        ({"current": 3, "total": 4}, 0.75),
        ({"completed": 5, "total": 0}, None),
    ],
)
def test_progress_forms(value, expected):
    got = readers.read_progress(value)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        "nan",
        "inf",
        "",
        "soon",
        "42%%",
        "1e400",
        [42],
        {},
        {"progress": {"percent": 5}},
        "9" * 100,
        "0/0",
    ],
)
def test_progress_unreadable_is_none(value):
    assert readers.read_progress(value) is None


# --- job envelopes -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["jobId", "id", "job_id"])
@pytest.mark.parametrize("wrap", ["bare", "job", "data", "data.job", "job.data"])
def test_read_job_id_every_key_and_envelope(key, wrap):
    inner = {key: "job_123"}
    payload = {
        "bare": inner,
        "job": {"job": inner},
        "data": {"data": inner},
        "data.job": {"data": {"job": inner}},
        "job.data": {"success": True, "job": {"data": inner}},
    }[wrap]
    assert readers.read_job_id(payload) == "job_123"


def test_read_job_id_int_and_string_forms():
    assert readers.read_job_id({"jobId": 42}) == "42"
    assert readers.read_job_id({"jobId": "  abc-1  "}) == "abc-1"
    assert readers.read_job_id({"job": "cl9x_abc"}) == "cl9x_abc"
    assert readers.read_job_id("bare-id") == "bare-id"
    # jobId is preferred to a generic id
    assert readers.read_job_id({"id": "req-1", "jobId": "job-1"}) == "job-1"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"ok": True, "message": "queued"},
        {"jobId": None},
        {"jobId": ""},
        {"jobId": True},
        {"jobId": 1.5},
        {"jobId": "../../admin"},
        {"jobId": "has space"},
        {"jobId": "a/b"},
        {"jobId": "x" * 201},
        {"jobId": 10**40},
        [],
        None,
        "<html>",
        3.5,
    ],
)
def test_read_job_id_missing_or_unusable(payload):
    with pytest.raises(RFE):
        readers.read_job_id(payload)


def test_read_job_id_error_lists_keys():
    with pytest.raises(RFE) as info:
        readers.read_job_id({"ok": True, "message": "queued"})
    assert "ok" in str(info.value) and "message" in str(info.value)


@pytest.mark.parametrize("key", ["jobId", "id", "job_id"])
@pytest.mark.parametrize("wrap", ["bare", "job", "data"])
def test_read_job_envelopes(key, wrap):
    inner = {key: "j1", "status": "Processing", "progress": 40}
    payload = {"bare": inner, "job": {"job": inner}, "data": {"data": inner}}[wrap]
    job = readers.read_job(payload)
    assert job.id == "j1"
    assert job.status == "running"
    assert job.progress == pytest.approx(0.4)
    assert job.result is None and job.error is None
    assert job.raw == inner
    assert not job.done


def test_read_job_given_id_wins():
    job = readers.read_job({"id": 99, "status": "done", "result": {"url": URL}}, "abc")
    assert job.id == "abc"
    assert job.status == "succeeded"
    assert job.result == {"url": URL}
    assert job.done


def test_read_job_without_any_id():
    job = readers.read_job({"status": "queued"})
    assert job.id == ""
    assert job.status == "queued"


def test_read_job_result_is_not_unwrapped_as_job():
    payload = {"status": "completed", "result": {"status": "ok", "url": URL}}
    job = readers.read_job(payload, "j")
    assert job.status == "succeeded"
    assert job.result == {"status": "ok", "url": URL}
    assert job.raw == payload


def test_read_job_data_beside_status_is_the_result():
    job = readers.read_job({"status": "complete", "data": {"images": [URL]}}, "j")
    assert job.status == "succeeded"
    assert job.result == {"images": [URL]}


def test_read_job_result_envelope_with_status_inside():
    job = readers.read_job({"result": {"jobId": "j9", "status": "failed", "error": "boom"}})
    assert (job.id, job.status, job.error) == ("j9", "failed", "boom")


def test_read_job_envelope_siblings_are_kept():
    job = readers.read_job({"job": {"id": "j2", "status": "succeeded"}, "result": {"url": URL}})
    assert job.result == {"url": URL}
    assert job.raw == {"id": "j2", "status": "succeeded", "result": {"url": URL}}


def test_read_job_replicate_style_output():
    job = readers.read_job({"id": "r1", "status": "succeeded", "output": [URL]})
    assert job.result == [URL]


def test_read_job_not_found_error_only():
    job = readers.read_job({"error": "Job not found"}, "gone")
    assert (job.id, job.status, job.error) == ("gone", "failed", "Job not found")
    assert job.done


@pytest.mark.parametrize(
    "error,rendered",
    [
        ("Out of memory", "Out of memory"),
        ({"message": "NSFW content detected"}, "NSFW content detected"),
        ({"detail": "bad prompt", "code": "E42"}, "bad prompt (E42)"),
        ({"error": {"message": "deep"}}, "deep"),
        ({"code": 500}, "500"),
        ({"foo": "bar", "n": 3}, "foo: bar; n: 3"),
        (["a", {"message": "b"}, "a"], "a; b"),
        ([{"msg": "field required", "type": "missing"}], "field required (missing)"),
        (True, "error (no detail given)"),
    ],
)
def test_read_job_error_rendering(error, rendered):
    job = readers.read_job({"status": "failed", "error": error}, "j")
    assert job.status == "failed"
    assert job.error == rendered


@pytest.mark.parametrize("error", [None, "", {}, [], False])
def test_read_job_null_errors_are_no_error(error):
    job = readers.read_job({"status": "weird", "error": error, "result": {"url": URL}}, "j")
    assert job.status == "succeeded"
    assert job.error is None


def test_read_job_unknown_status_rules():
    assert readers.read_job({"status": "??", "error": "x"}, "j").status == "failed"
    assert readers.read_job({"status": "??", "result": [URL]}, "j").status == "succeeded"
    assert readers.read_job({"status": "??"}, "j").status == "queued"
    assert readers.read_job({"status": "??", "progress": "10%"}, "j").status == "running"
    assert readers.read_job({"status": "??", "progress": 0}, "j").status == "queued"


def test_read_job_failed_without_error_uses_message():
    job = readers.read_job({"status": "FAILED", "message": "credits exhausted"}, "j")
    assert job.error == "credits exhausted"


def test_read_job_long_error_is_clipped():
    job = readers.read_job({"status": "failed", "error": "x" * 10_000}, "j")
    assert len(job.error) == 2000 and job.error.endswith("...")


@pytest.mark.parametrize(
    "payload", [None, [], "not json", 42, {}, {"hello": "world"}, {"data": {"url": URL}}]
)
def test_read_job_garbage(payload):
    with pytest.raises(RFE):
        readers.read_job(payload, "j")


def test_unwrap():
    job = {"id": "a", "status": "queued"}
    assert readers.unwrap({"job": job}) == job
    assert readers.unwrap({"data": job}) == job
    assert readers.unwrap({"data": {"job": job}}) == job
    assert readers.unwrap(job) is job
    assert readers.unwrap([job]) == [job]
    # a job with a status keeps its data/result
    assert readers.unwrap({"status": "done", "data": job}) == {"status": "done", "data": job}
    # result is the job's result unless it carries a status of its own
    assert readers.unwrap({"result": {"url": URL}}) == {"result": {"url": URL}}
    assert readers.unwrap({"result": job}) == job
    assert readers.unwrap({"id": "x", "result": job}) == {"id": "x", "result": job}


# --- images ----------------------------------------------------------------------------------


def refs(*pairs):
    return [ImageRef(kind, value) for kind, value in pairs]


@pytest.mark.parametrize(
    "result,expected",
    [
        (URL, refs(("url", URL))),
        ("  " + URL + "\n", refs(("url", URL))),
        ("http://127.0.0.1:8188/view?x=1", refs(("url", "http://127.0.0.1:8188/view?x=1"))),
        (DATA_URL, refs(("data", DATA_URL))),
        ("data:;base64," + PNG_B64, refs(("data", "data:;base64," + PNG_B64))),
        ({"url": URL}, refs(("url", URL))),
        ({"imageUrl": URL}, refs(("url", URL))),
        ({"image_url": URL}, refs(("url", URL))),
        ({"uri": URL}, refs(("url", URL))),
        ({"href": URL}, refs(("url", URL))),
        ({"src": URL}, refs(("url", URL))),
        ({"url": DATA_URL}, refs(("data", DATA_URL))),
        ({"output": URL}, refs(("url", URL))),
        ({"output": [URL, URL2]}, refs(("url", URL), ("url", URL2))),
        ({"outputs": [URL]}, refs(("url", URL))),
        ({"images": [URL, URL2]}, refs(("url", URL), ("url", URL2))),
        ({"images": [{"url": URL}, {"imageUrl": URL2}]}, refs(("url", URL), ("url", URL2))),
        ({"images": [{"b64_json": PNG_B64}]}, refs(("base64", PNG_B64))),
        ({"base64": PNG_B64}, refs(("base64", PNG_B64))),
        ({"b64_json": PNG_B64}, refs(("base64", PNG_B64))),
        ({"imageBase64": PNG_B64}, refs(("base64", PNG_B64))),
        ({"image_base64": PNG_B64}, refs(("base64", PNG_B64))),
        ({"b64_json": "QUJDREVGR0hJSktMTU5PUA=="}, refs(("base64", "QUJDREVGR0hJSktMTU5PUA=="))),
        ({"base64": DATA_URL}, refs(("data", DATA_URL))),
        ({"result": {"url": URL}}, refs(("url", URL))),
        ({"data": {"url": URL}}, refs(("url", URL))),
        ({"image": {"url": URL}}, refs(("url", URL))),
        ({"image": URL}, refs(("url", URL))),
        ({"result": URL}, refs(("url", URL))),
        ({"data": [{"b64_json": PNG_B64}]}, refs(("base64", PNG_B64))),  # OpenAI-style
        (
            {"result": {"images": [{"b64_json": PNG_B64}, {"url": URL}]}},
            refs(("base64", PNG_B64), ("url", URL)),
        ),
        ({"data": {"result": {"output": [URL]}}}, refs(("url", URL))),
        ({"imageUrls": [URL, URL2]}, refs(("url", URL), ("url", URL2))),
        ([URL, {"url": URL2}], refs(("url", URL), ("url", URL2))),
        ('{"url": "' + URL + '"}', refs(("url", URL))),
        (PNG_B64, refs(("base64", PNG_B64))),  # bare base64 that starts like a PNG
    ],
)
def test_image_shapes(result, expected):
    assert readers.read_image_refs(result) == expected


def test_images_order_kept_and_duplicates_removed():
    result = {"images": [URL2, {"url": URL}, URL2, {"src": URL}, DATA_URL, DATA_URL]}
    assert readers.read_image_refs(result) == refs(("url", URL2), ("url", URL), ("data", DATA_URL))


def test_one_image_object_gives_one_reference():
    # the same image as a URL and as base64: one reference, the URL
    assert readers.read_image_refs({"url": URL, "b64_json": PNG_B64, "thumbnail": {"url": URL2}}) == refs(
        ("url", URL)
    )


@pytest.mark.parametrize(
    "bad",
    [
        "file:///etc/passwd",
        "FILE:///C:/Windows/win.ini",
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "gopher://x",
        "//cdn.example.com/a.png",
        "/uploads/a.png",
        "a cat on a mat",
        "https://",
        "https:///nohost.png",
        "https://exa mple.com/a.png",
        "https://example.com/a\n.png",
        "http://[::1/a.png",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "data:image/svg+xml,<svg onload=alert(1)>",
        "data:image/png;base64,",
        "QUJDREVGR0hJSktMTU5PUA==",  # base64 but not under a base64 key, and not image-shaped
    ],
)
def test_unsafe_or_unusable_strings_are_skipped(bad):
    assert readers.read_image_refs({"images": [bad, URL]}) == refs(("url", URL))
    with pytest.raises(RFE):
        readers.read_image_refs(bad)
    with pytest.raises(RFE):
        readers.read_image_refs({"url": bad})


def test_file_url_with_good_fallback_in_same_object():
    assert readers.read_image_refs({"url": "file:///etc/passwd", "b64_json": PNG_B64}) == refs(
        ("base64", PNG_B64)
    )


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        {},
        [],
        "",
        42,
        True,
        {"status": "done"},
        {"text": "no image"},
        {"b64_json": "short"},
        {"base64": "not base64 !!"},
        [None, 3, {}],
    ],
)
def test_no_images_raises(garbage):
    with pytest.raises(RFE):
        readers.read_image_refs(garbage)


def test_no_images_error_names_keys():
    with pytest.raises(RFE) as info:
        readers.read_image_refs({"status": "done", "seed": 3})
    assert "status" in str(info.value) and "seed" in str(info.value)


# --- story -------------------------------------------------------------------------------------

BEATS_STORY = {
    "title": "The Lighthouse",
    "logline": "A keeper finds a message.",
    "beats": [
        {"heading": "Storm", "narration": "Waves hit the rocks."},
        {"title": "Bottle", "text": "A bottle washes up."},
        {"content": "Dawn breaks."},
    ],
}
BEATS_TEXT = (
    "The Lighthouse\n\nA keeper finds a message.\n\n"
    "1. Storm\nWaves hit the rocks.\n\n2. Bottle\nA bottle washes up.\n\n3. Dawn breaks."
)


def test_story_beats():
    story = readers.read_story(BEATS_STORY)
    assert story.raw is BEATS_STORY
    assert story.title == "The Lighthouse"
    assert story.text == BEATS_TEXT


@pytest.mark.parametrize("key", ["sections", "beats", "chapters", "scenes"])
def test_story_section_keys(key):
    story = readers.read_story({"title": "T", key: [{"title": "A", "narration": "a."}, {"heading": "B"}]})
    assert story.text == "T\n\n1. A\na.\n\n2. B"


@pytest.mark.parametrize("key", ["synopsis", "summary", "script", "narration", "text", "content"])
def test_story_single_text_field(key):
    story = readers.read_story({"title": "T", key: "  Once upon a time.  "})
    assert story.text == "T\n\nOnce upon a time."
    assert story.title == "T"


def test_story_paragraphs():
    story = readers.read_story({"title": "T", "paragraphs": ["One.", "Two.", 3, ""]})
    assert story.text == "T\n\nOne.\n\nTwo."


def test_story_field_order_and_dedup():
    story = readers.read_story(
        {"script": "Body.", "summary": "Sum.", "synopsis": "Sum.", "logline": "Log.", "title": "T"}
    )
    assert story.text == "T\n\nLog.\n\nSum.\n\nBody."


def test_story_wrapped_in_result():
    inner = {"title": "T", "synopsis": "S."}
    for wrapped in (
        {"story": inner},
        {"story": inner, "usage": {"tokens": 5}},
        {"data": {"story": inner}},
        {"result": {"storyData": inner}},
    ):
        story = readers.read_story(wrapped)
        assert story.raw is inner
        assert story.text == "T\n\nS."


def test_story_json_string():
    story = readers.read_story('{"title": "T", "synopsis": "S."}')
    assert story.raw == {"title": "T", "synopsis": "S."}
    assert story.text == "T\n\nS."
    assert readers.read_story({"story": '{"title": "T", "logline": "L"}'}).raw == {
        "title": "T",
        "logline": "L",
    }


def test_story_bare_string():
    story = readers.read_story("  Once upon a time.  ")
    assert story.raw == "  Once upon a time.  "
    assert story.text == "Once upon a time."
    assert story.title == ""
    wrapped = readers.read_story({"story": "Once."})
    assert (wrapped.raw, wrapped.text) == ("Once.", "Once.")


def test_story_string_field_named_story_belongs_to_outer():
    outer = {"title": "T", "story": "Once."}
    story = readers.read_story(outer)
    assert story.raw is outer
    assert story.text == "T\n\nOnce."


def test_story_unfamiliar_fields_fall_back_to_strings():
    odd = {
        "id": "s1",
        "createdAt": "2024-01-01",
        "heroName": "Ada",
        "plotPoints": ["She flies.", "She lands."],
    }
    story = readers.read_story(odd)
    assert story.raw is odd
    assert story.text == "Ada\n\nShe flies.\n\nShe lands."


def test_story_list_of_beats():
    beats = [{"title": "A", "narration": "a."}, "b."]
    story = readers.read_story(beats)
    assert story.raw is beats
    assert story.text == "1. A\na.\n\n2. b."


@pytest.mark.parametrize("garbage", [None, "", "   ", {}, [], 42, True, {"id": "x"}, {"story": None}, [1, 2]])
def test_story_garbage(garbage):
    with pytest.raises(RFE):
        readers.read_story(garbage)


# --- scene plan --------------------------------------------------------------------------------

SCENES = [
    {"sceneNumber": 1, "imagePrompt": "a lighthouse", "narration": "It stood.", "duration": 5},
    {"sceneNumber": 2, "imagePrompt": "a storm", "narration": "It rained.", "duration": 4.5},
]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: {"scenes": s},
        lambda s: {"plan": s},
        lambda s: {"shots": s},
        lambda s: s,
        lambda s: {"result": {"scenes": s}},
        lambda s: {"data": {"plan": s}},
        lambda s: {"scenePlan": {"scenes": s}},
        lambda s: {"scene_plan": s},
        lambda s: {"plan": {"shots": s}},
        lambda s: {"data": {"scenePlan": {"scenes": s}}},
    ],
)
def test_scene_plan_containers(wrap):
    result = wrap(SCENES)
    plan = readers.read_scene_plan(result)
    assert plan.raw is result
    assert [(s.number, s.image_prompt, s.narration, s.duration) for s in plan.scenes] == [
        (1, "a lighthouse", "It stood.", 5.0),
        (2, "a storm", "It rained.", 4.5),
    ]
    assert plan.total_duration == pytest.approx(9.5)
    assert plan.scenes[0].raw is SCENES[0]


def test_scene_plan_json_string():
    plan = readers.read_scene_plan('{"scenes": [{"prompt": "p"}]}')
    assert [(s.number, s.image_prompt) for s in plan.scenes] == [(1, "p")]


@pytest.mark.parametrize("key", ["sceneNumber", "scene_number", "number", "index", "scene"])
def test_scene_number_keys(key):
    plan = readers.read_scene_plan([{key: 3, "prompt": "c"}, {key: 2, "prompt": "b"}])
    assert [(s.number, s.image_prompt) for s in plan.scenes] == [(2, "b"), (3, "c")]


def test_scene_number_forms():
    plan = readers.read_scene_plan(
        [{"number": "Scene 7", "prompt": "g"}, {"number": 5.0, "prompt": "e"}, {"number": "6", "prompt": "f"}]
    )
    assert [s.number for s in plan.scenes] == [5, 6, 7]


def test_scene_numbers_from_zero_are_shifted():
    plan = readers.read_scene_plan(
        [{"index": 1, "prompt": "b"}, {"index": 0, "prompt": "a"}, {"index": 2, "prompt": "c"}]
    )
    assert [(s.number, s.image_prompt) for s in plan.scenes] == [(1, "a"), (2, "b"), (3, "c")]


def test_scene_numbers_fall_back_to_position_and_sort_is_stable():
    plan = readers.read_scene_plan(
        [
            {"prompt": "first"},
            {"prompt": "second"},
            {"number": 1, "prompt": "dup"},
            {"number": -4, "prompt": "neg"},
            {"number": 2.5, "prompt": "frac"},
        ]
    )
    assert [(s.number, s.image_prompt) for s in plan.scenes] == [
        (1, "first"),
        (1, "dup"),
        (2, "second"),
        (4, "neg"),
        (5, "frac"),
    ]


@pytest.mark.parametrize(
    "key", ["imagePrompt", "image_prompt", "visualPrompt", "visual_prompt", "prompt", "description", "visual"]
)
def test_scene_prompt_keys(key):
    plan = readers.read_scene_plan({"scenes": [{key: " a red door "}]})
    assert plan.scenes[0].image_prompt == "a red door"


def test_scene_prompt_precedence():
    plan = readers.read_scene_plan([{"description": "desc", "imagePrompt": "img"}])
    assert plan.scenes[0].image_prompt == "img"


@pytest.mark.parametrize("key", ["narration", "voiceover", "voiceOver", "text", "script", "dialogue"])
def test_scene_narration_keys(key):
    plan = readers.read_scene_plan([{"prompt": "p", key: "Hello there."}])
    assert plan.scenes[0].narration == "Hello there."


def test_scene_dialogue_list():
    plan = readers.read_scene_plan(
        [{"prompt": "p", "dialogue": [{"speaker": "Ann", "line": "Hi."}, {"text": "Bye."}]}]
    )
    assert plan.scenes[0].narration == "Ann: Hi.\nBye."


def test_scene_without_prompt_uses_narration_then_title_then_empty():
    plan = readers.read_scene_plan([{"narration": "Said."}, {"title": "Titled"}, {"duration": 3}])
    assert [s.image_prompt for s in plan.scenes] == ["Said.", "Titled", ""]
    assert [s.number for s in plan.scenes] == [1, 2, 3]


def test_scene_as_bare_string_is_its_prompt():
    plan = readers.read_scene_plan(["a cat", "  ", None, 3, "a dog"])
    assert [(s.number, s.image_prompt) for s in plan.scenes] == [(1, "a cat"), (5, "a dog")]


@pytest.mark.parametrize(
    "field,value,seconds",
    [
        ("duration", 5, 5.0),
        ("duration", 5.5, 5.5),
        ("duration", "5s", 5.0),
        ("duration", "5 sec", 5.0),
        ("duration", "5 seconds", 5.0),
        ("duration", "5.5", 5.5),
        ("duration", "0:05", 5.0),
        ("duration", "1:02:03", 3723.0),
        ("duration", "500ms", 0.5),
        ("duration", "1.5 min", 90.0),
        ("durationSeconds", 7, 7.0),
        ("duration_seconds", "7", 7.0),
        ("seconds", 8, 8.0),
        ("length", "9s", 9.0),
        ("durationMs", 2500, 2.5),
        ("duration_ms", "2500", 2.5),
        ("durationMs", "3s", 3.0),
        ("duration", -1, None),
        ("duration", "soon", None),
        ("duration", float("nan"), None),
        ("duration", True, None),
        ("duration", 10**400, None),
    ],
)
def test_scene_durations(field, value, seconds):
    plan = readers.read_scene_plan([{"prompt": "p", field: value}])
    if seconds is None:
        assert plan.scenes[0].duration is None
        assert plan.total_duration is None
    else:
        assert plan.scenes[0].duration == pytest.approx(seconds)


def test_seconds_win_over_milliseconds():
    plan = readers.read_scene_plan([{"prompt": "p", "durationMs": 9000, "duration": 4}])
    assert plan.scenes[0].duration == 4.0


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        {},
        [],
        "",
        "text",
        5,
        {"scenes": []},
        {"scenes": [None, 1, []]},
        {"foo": [1]},
        {"scenes": "no"},
        {"plan": {}},
    ],
)
def test_scene_plan_garbage(garbage):
    with pytest.raises(RFE):
        readers.read_scene_plan(garbage)


def test_empty_scene_plan_message():
    with pytest.raises(RFE) as info:
        readers.read_scene_plan({"scenes": []})
    assert "scene plan has no scenes" in str(info.value)


# --- workspaces and sessions -------------------------------------------------------------------


@pytest.mark.parametrize("id_key", ["id", "workspaceId", "workspace_id", "_id"])
@pytest.mark.parametrize("name_key", ["name", "title", "slug"])
def test_workspace_keys(id_key, name_key):
    items = [{id_key: "ws_1", name_key: "Studio"}, {id_key: 2}]
    for payload in (items, {"workspaces": items}, {"data": items}, {"data": {"workspaces": items}}):
        got = readers.read_workspaces(payload)
        assert [(w.id, w.name) for w in got] == [("ws_1", "Studio"), ("2", "")]
        assert got[0].raw is items[0]


def test_workspaces_tolerance():
    assert readers.read_workspaces([]) == []
    assert readers.read_workspaces({"workspaces": []}) == []
    got = readers.read_workspaces(
        [{"name": "no id"}, "ws_bare", {"workspace": {"id": "ws_m", "name": "M"}, "role": "admin"}]
    )
    assert [(w.id, w.name) for w in got] == [("ws_bare", ""), ("ws_m", "M")]
    single = readers.read_workspaces({"id": "ws_only", "name": "Only"})
    assert [(w.id, w.name) for w in single] == [("ws_only", "Only")]


@pytest.mark.parametrize("garbage", [None, "x", 3, {}, {"workspaces": "x"}, [{"name": "no id"}], [None, {}]])
def test_workspaces_garbage(garbage):
    with pytest.raises(RFE):
        readers.read_workspaces(garbage)


@pytest.mark.parametrize("id_key", ["id", "sessionId", "_id"])
@pytest.mark.parametrize("name_key", ["name", "title", "topic", "projectName"])
def test_session_list_keys(id_key, name_key):
    items = [{id_key: "s1", name_key: "Lighthouse", "createdAt": "2024-05-01T10:00:00Z"}]
    for payload in (
        {"sessions": items},
        items,
        {"data": items},
        {"projects": items},
        {"data": {"sessions": items}},
    ):
        got = readers.read_sessions(payload)
        assert [(p.id, p.name, p.created) for p in got] == [("s1", "Lighthouse", "2024-05-01T10:00:00Z")]
        assert got[0].raw is items[0]
        assert got[0].story is None and got[0].scene_plan is None and got[0].images == []


@pytest.mark.parametrize(
    "key,value,created",
    [
        ("createdAt", "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:00.000Z"),
        ("created_at", 1700000000, "2023-11-14T22:13:20Z"),
        ("created", 1700000000000, "2023-11-14T22:13:20Z"),
        ("updatedAt", "1700000000", "2023-11-14T22:13:20Z"),
        ("createdAt", {"_seconds": 1700000000, "_nanoseconds": 0}, "2023-11-14T22:13:20Z"),
        ("createdAt", 1e300, ""),
        ("createdAt", -5, ""),
        ("createdAt", None, ""),
    ],
)
def test_session_created_forms(key, value, created):
    got = readers.read_sessions({"sessions": [{"id": "s1", key: value}]})
    assert got[0].created == created


def test_sessions_empty_and_garbage():
    assert readers.read_sessions({"sessions": []}) == []
    got = readers.read_sessions([{"title": "no id"}, {"id": "s2"}, "junk"])
    assert [(p.id, p.name) for p in got] == [("s2", "")]
    for garbage in (None, {}, "x", {"sessions": {}}, [{"title": "no id"}]):
        with pytest.raises(RFE):
            readers.read_sessions(garbage)


FULL_SESSION = {
    "id": "s1",
    "title": "Lighthouse",
    "createdAt": 1700000000,
    "story": {"title": "The Lighthouse", "synopsis": "A keeper."},
    "scenePlan": {
        "scenes": [
            {"sceneNumber": 2, "imagePrompt": "storm", "imageUrl": URL2},
            {"sceneNumber": 1, "imagePrompt": "tower", "image": {"url": URL}},
            {"sceneNumber": 3, "imagePrompt": "dawn"},
        ]
    },
    "images": [URL, {"b64_json": PNG_B64}],
}


@pytest.mark.parametrize("wrap", ["bare", "session", "data", "project", "data.session"])
def test_read_session_full(wrap):
    payload = {
        "bare": FULL_SESSION,
        "session": {"session": FULL_SESSION},
        "data": {"data": FULL_SESSION},
        "project": {"project": FULL_SESSION},
        "data.session": {"data": {"session": FULL_SESSION}},
    }[wrap]
    project = readers.read_session(payload)
    assert (project.id, project.name, project.created) == ("s1", "Lighthouse", "2023-11-14T22:13:20Z")
    assert project.story.text == "The Lighthouse\n\nA keeper."
    assert project.story.raw is FULL_SESSION["story"]
    assert [(s.number, s.image_prompt) for s in project.scene_plan.scenes] == [
        (1, "tower"),
        (2, "storm"),
        (3, "dawn"),
    ]
    # scene images in scene order, then project images, no duplicates
    assert project.images == refs(("url", URL), ("url", URL2), ("base64", PNG_B64))
    assert project.raw is FULL_SESSION


def test_read_session_other_keys():
    project = readers.read_session(
        {
            "sessionId": "s2",
            "topic": "Space",
            "storyData": "A short story.",
            "scenes": [{"scene_number": 1, "image_prompt": "rocket", "image_url": URL}],
        }
    )
    assert (project.id, project.name) == ("s2", "Space")
    assert project.story.text == "A short story."
    assert project.scene_plan.scenes[0].image_prompt == "rocket"
    assert project.images == refs(("url", URL))


def test_read_session_missing_parts():
    project = readers.read_session({"id": "s3"})
    assert (project.id, project.name, project.created) == ("s3", "", "")
    assert project.story is None and project.scene_plan is None and project.images == []


def test_read_session_unreadable_parts_are_none():
    project = readers.read_session(
        {
            "id": "s4",
            "story": {},
            "script": "Fallback script.",
            "scenePlan": {"scenes": []},
            "plan": [{"prompt": "p"}],
            "images": ["file:///etc/passwd"],
        }
    )
    assert project.story.text == "Fallback script."
    assert [s.image_prompt for s in project.scene_plan.scenes] == ["p"]
    assert project.images == []


def test_read_session_id_and_name_fallbacks():
    project = readers.read_session(
        {"story": {"title": "Named by story", "text": "x"}}, session_id="asked-for"
    )
    assert (project.id, project.name) == ("asked-for", "Named by story")


@pytest.mark.parametrize("garbage", [None, [], "x", 3])
def test_read_session_garbage(garbage):
    with pytest.raises(RFE):
        readers.read_session(garbage)


# --- hostile shapes ----------------------------------------------------------------------------


def _deep(levels, make):
    value = None
    for _ in range(levels):
        value = make(value)
    return value


@pytest.mark.parametrize(
    "make",
    [
        lambda v: [v],
        lambda v: {"data": v},
        lambda v: {"result": v, "images": [v]},
        lambda v: {"story": v, "scenes": [v], "error": v, "job": v},
    ],
)
def test_deeply_nested_payloads_do_not_blow_the_stack(make):
    deep = _deep(50_000, make)
    for reader in (
        readers.read_job,
        readers.read_job_id,
        readers.read_story,
        readers.read_scene_plan,
        readers.read_image_refs,
        readers.read_workspaces,
        readers.read_sessions,
        readers.read_session,
    ):
        try:
            reader(deep)
        except RFE:
            pass
    job = readers.read_job({"status": "failed", "error": deep}, "j")
    assert job.status == "failed"


def test_deeply_nested_json_text_is_not_decoded():
    text = "[" * 100_000 + "]" * 100_000
    for reader in (readers.read_scene_plan, readers.read_image_refs):
        with pytest.raises(RFE):
            reader(text)
    # Undecodable text is plain text to the story reader, kept as it is.
    assert readers.read_story(text).raw is text


def test_huge_lists_are_bounded():
    plan = readers.read_scene_plan([{"prompt": f"p{i}"} for i in range(20_000)])
    assert len(plan.scenes) == 10_000
    many = readers.read_image_refs([f"https://cdn.example.com/{i}.png" for i in range(5_000)])
    assert len(many) == 1_000
    assert not math.isnan(plan.total_duration or 0.0)


# --- images by structure -----------------------------------------------------------------------

U1, U2, U3 = (f"https://cdn.example.com/scene{n}.png" for n in (1, 2, 3))
PLAN = {"scenes": [{"sceneNumber": n, "imagePrompt": f"prompt {n}", "duration": 4} for n in (1, 2, 3)]}


@pytest.mark.parametrize(
    "beside",
    [
        {"scenes": [{"sceneNumber": 3, "imageUrl": U3}, {"sceneNumber": 1, "imageUrl": U1},
                    {"sceneNumber": 2, "imageUrl": U2}]},
        {"assets": [{"type": "image", "scene_number": 2, "url": U2}, {"type": "image", "scene_number": 3, "url": U3},
                    {"type": "audio", "scene_number": 1, "url": "https://cdn.example.com/voice1.png"},
                    {"type": "image", "scene_number": 1, "url": U1}]},
        {"media": {"generated": [{"scene": "Scene 3", "output": {"image_url": U3}},
                                 {"scene": "Scene 2", "output": [U2]}, {"scene": "Scene 1", "picture": U1}]}},
        {"images": [{"index": 2, "url": U3}, {"index": 0, "url": U1}, {"index": 1, "url": U2}]},
        {"scenes": json.dumps([{"number": 3, "src": U3}, {"number": 2, "src": U2}, {"number": 1, "src": U1}])},
    ],
    ids=["scenes", "assets", "nested-media", "zero-based-index", "json-text"],
)
def test_project_images_beside_the_plan_come_in_scene_order(beside):
    project = readers.read_session({"id": "p9", "name": "Beside", "story": {"title": "T", "logline": "L."},
                                    "scenePlan": PLAN, **beside})
    assert project.images == refs(("url", U1), ("url", U2), ("url", U3))
    assert [s.number for s in project.scene_plan.scenes] == [1, 2, 3]
    assert project.story.title == "T"


def test_images_at_any_depth():
    deep = {"a": {"b": [{"c": {"d": {"e": [{"f": {"output": {"images": [{"imageUrl": U1}]}}}]}}}]}}
    assert readers.read_image_refs(deep) == refs(("url", U1))
    wrapped = {"url": U2}
    for _ in range(25):
        wrapped = {"payload": [wrapped]}
    assert readers.read_image_refs(wrapped) == refs(("url", U2))


def test_data_urls_and_base64_in_scene_order():
    result = {"frames": [{"scene_number": 3, "b64_json": PNG_B64}, {"scene_number": 1, "image": DATA_URL},
                         {"scene_number": 2, "imageBase64": "  " + PNG_B64[:40] + "\n" + PNG_B64[40:]}]}
    got = readers.read_image_refs(result)
    assert [ref.kind for ref in got] == ["data", "base64", "base64"]
    assert got[0].value == DATA_URL and got[2].value == PNG_B64


def test_images_are_deduplicated_and_keep_their_scene_place():
    project = readers.read_session({
        "id": "p1",
        "images": [U2, U1, {"url": U2}],  # first seen without a scene number
        "scenePlan": {"scenes": [{"sceneNumber": 2, "imageUrl": U2}, {"sceneNumber": 1, "imageUrl": U1}]},
        "scenes": [{"sceneNumber": 1, "image": {"url": U1}}, {"sceneNumber": 3, "imageUrl": U3}],
    })
    assert project.images == refs(("url", U1), ("url", U2), ("url", U3))


def test_unnumbered_images_follow_numbered_ones_in_document_order():
    got = readers.read_image_refs({"images": [U3, U1], "scenes": [{"sceneNumber": 5, "url": U2}]})
    assert got == refs(("url", U2), ("url", U3), ("url", U1))


def test_thumbnails_only_when_nothing_else():
    assert readers.read_image_refs({"thumbnailUrl": U1, "output": {"url": U2}}) == refs(("url", U2))
    assert readers.read_image_refs({"id": "x", "thumbnailUrl": U1}) == refs(("url", U1))
    project = readers.read_session({"id": "p", "coverImage": U3, "scenes": [{"sceneNumber": 1, "imageUrl": U1}]})
    assert project.images == refs(("url", U1))


def test_what_is_not_a_scene_image_is_left_alone():
    result = {
        "user": {"imageUrl": "https://img.clerk.com/avatar.png"},
        "input": {"image": "https://cdn.example.com/reference.png"},
        "audioUrl": "https://cdn.example.com/narration.png",
        "video": {"url": "https://cdn.example.com/clip.png"},
        "assets": [{"kind": "video", "url": "https://cdn.example.com/v.png"}, {"url": "https://cdn.example.com/a.mp3"},
                   {"mimeType": "audio/mpeg", "url": "https://cdn.example.com/a.png"}],
        "imagePrompt": "https://cdn.example.com/prompt.png",
        "description": U3,
        "output": [U1],
    }
    assert readers.read_image_refs(result) == refs(("url", U1))


@pytest.mark.parametrize(
    "reader,payload,words",
    [
        (readers.read_image_refs, {"status": "done", "meta": {"seed": 3, "model": "flux"}},
         ["no image URL or image data", "status", "meta {seed, model}"]),
        (readers.read_image_refs, {"items": [{"caption": "a cat", "width": 512}]}, ["items [1 x {caption, width}]"]),
        (readers.read_session, {"owner": "u1", "blob": {"kind": "x", "v": 2}},
         ["no project id, story, scene plan or image", "owner", "blob {kind, v}"]),
        (readers.read_scene_plan, {"storyboard": {"frames": 3}}, ["no list of scenes", "storyboard {frames}"]),
        (readers.read_story, {"meta": {"model": "x"}}, ["no readable text", "meta {model}"]),
        (readers.read_job, {"hello": {"world": 1}}, ["no status, result or error", "hello {world}"]),
    ],
)
def test_nothing_readable_names_the_keys_seen(reader, payload, words):
    with pytest.raises(RFE) as info:
        reader(payload)
    for word in words:
        assert word in str(info.value)


def test_keys_seen_are_bounded():
    many = {f"key{i}": {f"inner{j}": j for j in range(20)} for i in range(50)}
    text = readers.describe(many)
    assert len(re.findall(r"\bkey\d+", text)) == 30 and text.endswith("...")
    assert "inner8" not in text and len(text) < 3000


def test_project_with_nothing_readable_but_an_id_is_an_empty_project():
    project = readers.read_session({"id": "p2", "note": "fresh"})
    assert (project.id, project.story, project.scene_plan, project.images) == ("p2", None, None, [])


# --- layout ------------------------------------------------------------------------------------

READERS_DIR = PACK_DIR / "nodes" / "api" / "readers"


def test_each_reader_module_is_small_and_says_what_it_owns():
    files = sorted(READERS_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "vocabulary.py", "jobs.py", "story.py", "scenes.py",
                                       "images.py", "projects.py"}
    assert not (PACK_DIR / "nodes" / "api" / "readers.py").exists()
    for path in files:
        source = path.read_text()
        assert source.startswith('"""'), path.name
        assert len(source.splitlines()) < 400, path.name


def test_synonym_tables_live_only_in_the_vocabulary():
    tuple_of_words = re.compile(r'^(_?[A-Z_]+)\s*=\s*\(\s*"', re.MULTILINE)
    for path in READERS_DIR.glob("*.py"):
        if path.name != "vocabulary.py":
            # Base64 openings of image files are signatures, not synonyms.
            assert set(tuple_of_words.findall(path.read_text())) <= {"_MAGIC"}, path.name


def test_code_and_spec_cite_nothing_outside_the_repo():
    for path in [*READERS_DIR.glob("*.py"), PACK_DIR / "nodes" / "api" / "models.py",
                 PACK_DIR / "nodes" / "projects.py", PACK_DIR / "docs" / "openapi.yaml"]:
        assert "DESIGN" not in path.read_text(), path.name
