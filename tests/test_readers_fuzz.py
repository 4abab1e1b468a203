"""Property tests: on any JSON value, a reader returns its model type or raises ResponseFormatError.

Two sources of input: arbitrary JSON (what a broken or hostile server could send) and objects built
from the keys the readers look for, with arbitrary or near-miss values (what a server that almost
matches our assumptions sends). Images found by structure come back in scene order wherever they are
put. Derandomized so CI runs the same examples every time.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import pack_module

readers = pack_module("nodes.api.readers")
models = pack_module("nodes.api.models")
errors = pack_module("nodes.api.errors")

RFE = errors.ResponseFormatError
STATUSES = {"queued", "running", "succeeded", "failed", "canceled"}

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

KNOWN_KEYS = [
    # envelopes and jobs
    "job",
    "data",
    "result",
    "results",
    "output",
    "outputs",
    "status",
    "state",
    "progress",
    "percent",
    "error",
    "errors",
    "message",
    "detail",
    "code",
    "jobId",
    "job_id",
    "id",
    "_id",
    # stories
    "story",
    "storyData",
    "title",
    "logline",
    "synopsis",
    "summary",
    "script",
    "narration",
    "text",
    "content",
    "paragraphs",
    "sections",
    "beats",
    "chapters",
    "scenes",
    "heading",
    # scene plans
    "plan",
    "shots",
    "scenePlan",
    "scene_plan",
    "sceneNumber",
    "scene_number",
    "number",
    "index",
    "scene",
    "imagePrompt",
    "image_prompt",
    "visualPrompt",
    "prompt",
    "description",
    "visual",
    "voiceover",
    "dialogue",
    "duration",
    "durationSeconds",
    "seconds",
    "length",
    "durationMs",
    "duration_ms",
    # images
    "url",
    "imageUrl",
    "image_url",
    "uri",
    "href",
    "src",
    "images",
    "image",
    "base64",
    "b64_json",
    "imageBase64",
    "image_base64",
    "imageUrls",
    "thumbnailUrl",
    "assets",
    "type",
    "user",
    "input",
    # workspaces and sessions
    "workspaces",
    "workspaceId",
    "name",
    "slug",
    "sessions",
    "projects",
    "session",
    "project",
    "sessionId",
    "topic",
    "projectName",
    "createdAt",
    "created_at",
    "created",
    "updatedAt",
]

PROGRESS_KEYS = [
    "percent",
    "percentage",
    "progress",
    "value",
    "fraction",
    "current",
    "completed",
    "done",
    "step",
    "total",
    "steps",
]

NEAR_MISS_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "https://cdn.example.com/a.png",
        "http://127.0.0.1/x.png",
        "https://",
        "http://[::1/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://x/y",
        "//cdn/x.png",
        "/rel/x.png",
        "data:image/png;base64," + PNG_B64,
        "data:image/png;base64,",
        "data:text/html;base64,PGI+",
        PNG_B64,
        "QUJDREVGR0hJSktMTU5PUA==",
        "completed",
        "In-Progress",
        "FAILED",
        "cancelled",
        "mystery",
        "42%",
        "0.42",
        "150",
        "-5",
        "nan",
        "inf",
        "1e400",
        "3/10",
        "0/0",
        "5s",
        "0:05",
        "1:02:03",
        "500ms",
        "Scene 3",
        "9" * 40,
        "{",
        "[",
        '{"scenes": [{"prompt": "p"}]}',
        '{"title": "T"}',
        '["a", "b"]',
        "1700000000",
        "2024-01-01T00:00:00Z",
        "../../etc",
        "a b",
        "x" * 300,
    ]
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([0, 1, -1, 100, 10**400, -(10**400)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | NEAR_MISS_STRINGS
)

ANY_JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

# Near-miss strings get half the leaves, so that URLs, ids and status words land under known keys often.
KEYED = st.recursive(
    NEAR_MISS_STRINGS | SCALARS,
    lambda children: (
        st.dictionaries(st.sampled_from(KNOWN_KEYS), children, max_size=6)
        | st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS), ANY_JSON, max_size=3)
    ),
    max_leaves=30,
)


# Values that read well where they land (a URL under "url", an id under "jobId", a word under "status").
GOOD_VALUES = st.sampled_from(
    [
        "https://cdn.example.com/a.png",
        "https://cdn.example.com/b.jpg",
        "data:image/png;base64," + PNG_B64,
        PNG_B64,
        "job_abc123",
        42,
        "completed",
        "processing",
        "failed",
        0.5,
        "5s",
        3,
        "Scene 2",
        "A lighthouse in a storm",
        1700000000,
    ]
)
LEAF = GOOD_VALUES | NEAR_MISS_STRINGS | SCALARS
IMAGE_LEAF = (
    st.sampled_from(["https://cdn.example.com/a.png", "data:image/png;base64," + PNG_B64, PNG_B64]) | LEAF
)


def _obj(required=None, **optional):
    return st.fixed_dictionaries(required or {}, optional=optional)


# The documented shapes with every leaf fuzzed: many of these read, so the success paths are checked.
SHAPED = st.one_of(
    _obj({"jobId": LEAF}, id=LEAF, job_id=LEAF).map(lambda d: {"job": d}),
    _obj({"id": LEAF}).map(lambda d: {"data": d}),
    _obj(
        {
            "result": _obj(
                {
                    "images": st.lists(
                        IMAGE_LEAF | _obj({"url": IMAGE_LEAF}, b64_json=IMAGE_LEAF), min_size=1, max_size=3
                    )
                }
            )
        },
        status=LEAF,
        progress=LEAF,
        error=LEAF | _obj(message=LEAF, code=LEAF),
    ),
    _obj({"output": st.lists(IMAGE_LEAF, min_size=1, max_size=3)}, status=LEAF),
    _obj({"data": _obj({"status": LEAF}, result=st.lists(LEAF, max_size=3), jobId=LEAF)}),
    _obj(
        {
            "scenes": st.lists(
                _obj(
                    {"imagePrompt": LEAF},
                    sceneNumber=LEAF,
                    index=LEAF,
                    narration=LEAF,
                    duration=LEAF,
                    durationMs=LEAF,
                ),
                min_size=1,
                max_size=4,
            )
        }
    ),
    _obj({"title": LEAF}, logline=LEAF, beats=st.lists(_obj(heading=LEAF, narration=LEAF), max_size=3)),
    _obj({"sessions": st.lists(_obj({"id": LEAF}, title=LEAF, createdAt=LEAF), min_size=1, max_size=3)}),
    _obj({"workspaces": st.lists(_obj({"id": LEAF}, name=LEAF), min_size=1, max_size=3)}),
    _obj({"id": LEAF}, title=LEAF, story=KEYED, scenePlan=KEYED, images=st.lists(LEAF, max_size=3)).map(
        lambda d: {"session": d}
    ),
)


def _call(reader, payload):
    """The reader's value, or None when it raised ResponseFormatError (any other exception fails)."""
    try:
        return reader(payload)
    except RFE as error:
        assert str(error)  # a readable sentence
        return None


def _check_ref(ref):
    assert isinstance(ref, models.ImageRef)
    assert ref.kind in ("url", "data", "base64")
    if ref.kind == "url":
        parts = urlsplit(ref.value)
        assert parts.scheme in ("http", "https") and parts.hostname
    elif ref.kind == "data":
        assert ref.value.lower().startswith("data:")


def _check_story(story):
    assert isinstance(story, models.Story)
    assert isinstance(story.text, str) and story.text
    assert isinstance(story.title, str)


def _check_plan(plan):
    assert isinstance(plan, models.ScenePlan)
    assert plan.scenes
    numbers = [scene.number for scene in plan.scenes]
    assert numbers == sorted(numbers)
    for scene in plan.scenes:
        assert isinstance(scene, models.Scene)
        assert isinstance(scene.number, int) and scene.number >= 1
        assert isinstance(scene.image_prompt, str) and isinstance(scene.narration, str)
        assert scene.duration is None or (isinstance(scene.duration, float) and scene.duration >= 0)


def _check_job(job):
    assert isinstance(job, models.Job)
    assert job.status in STATUSES
    assert job.progress is None or 0.0 <= job.progress <= 1.0
    assert job.error is None or (isinstance(job.error, str) and job.error)
    assert isinstance(job.id, str) and isinstance(job.raw, dict)


def _read_job(payload):
    job = _call(readers.read_job, payload)
    if job is not None:
        _check_job(job)
    job = _call(lambda p: readers.read_job(p, "given-id"), payload)
    if job is not None:
        assert job.id == "given-id"


def _read_job_id(payload):
    job_id = _call(readers.read_job_id, payload)
    if job_id is not None:
        assert isinstance(job_id, str) and 0 < len(job_id) <= 200
        assert not any(c.isspace() or c in "/?#\\" for c in job_id)


def _unwrap(payload):
    unwrapped = readers.unwrap(payload)
    if not isinstance(payload, dict):
        assert unwrapped is payload


def _read_story(payload):
    story = _call(readers.read_story, payload)
    if story is not None:
        _check_story(story)


def _read_scene_plan(payload):
    plan = _call(readers.read_scene_plan, payload)
    if plan is not None:
        _check_plan(plan)


def _read_image_refs(payload):
    refs = _call(readers.read_image_refs, payload)
    if refs is not None:
        assert refs and len(refs) == len(set(refs))
        for ref in refs:
            _check_ref(ref)


def _find_images(payload):
    refs = readers.find_images(payload)
    assert len(refs) == len(set(refs))
    for ref in refs:
        _check_ref(ref)
    described = readers.describe(payload)
    assert isinstance(described, str) and len(described) < 20_000


def _read_workspaces(payload):
    workspaces = _call(readers.read_workspaces, payload)
    if workspaces is not None:
        assert isinstance(workspaces, list)
        for workspace in workspaces:
            assert (
                isinstance(workspace, models.Workspace) and workspace.id and isinstance(workspace.name, str)
            )


def _read_sessions(payload):
    projects = _call(readers.read_sessions, payload)
    if projects is not None:
        assert isinstance(projects, list)
        for project in projects:
            assert isinstance(project, models.Project) and project.id
            assert isinstance(project.name, str) and isinstance(project.created, str)


def _read_session(payload):
    project = _call(readers.read_session, payload)
    if project is not None:
        assert isinstance(project, models.Project)
        assert isinstance(project.id, str) and isinstance(project.name, str)
        if project.story is not None:
            _check_story(project.story)
        if project.scene_plan is not None:
            _check_plan(project.scene_plan)
        for ref in project.images:
            _check_ref(ref)


# One generated payload goes through every reader: generating JSON costs more than reading it.
CHECKS = [
    _read_job,
    _read_job_id,
    _unwrap,
    _read_story,
    _read_scene_plan,
    _read_image_refs,
    _find_images,
    _read_workspaces,
    _read_sessions,
    _read_session,
]


@FUZZ
@given(ANY_JSON)
def test_every_reader_on_arbitrary_json(payload):
    for check in CHECKS:
        check(payload)


@FUZZ
@given(KEYED)
def test_every_reader_on_objects_of_known_keys(payload):
    for check in CHECKS:
        check(payload)


@FUZZ
@given(SHAPED)
def test_every_reader_on_documented_shapes(payload):
    for check in CHECKS:
        check(payload)


@FUZZ
@given(KEYED.map(lambda v: json.dumps(v, allow_nan=True)))
def test_every_reader_on_json_text(payload):
    for check in CHECKS:
        check(payload)


@FUZZ
@given(
    SCALARS
    | st.dictionaries(st.sampled_from(KNOWN_KEYS), SCALARS, max_size=3)
    | st.lists(SCALARS, max_size=3),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_normalize_status_is_one_of_five(raw, has_error, has_result, has_progress):
    status = readers.normalize_status(
        raw, has_error=has_error, has_result=has_result, has_progress=has_progress
    )
    assert status in STATUSES


@FUZZ
@given(
    SCALARS
    | st.dictionaries(
        st.sampled_from(PROGRESS_KEYS),
        SCALARS | st.dictionaries(st.sampled_from(PROGRESS_KEYS), SCALARS),
        max_size=3,
    )
)
def test_read_progress_in_range(value):
    progress = readers.read_progress(value)
    assert progress is None or (isinstance(progress, float) and 0.0 <= progress <= 1.0)


# --- images by structure: wherever they sit, they come back in scene order -------------------------

IMAGE_KEYS = st.sampled_from(["url", "imageUrl", "image_url", "src", "output", "picture", "image"])
WRAPPER_KEYS = st.sampled_from(["data", "result", "media", "generated", "payload", "items", "x"])


@st.composite
def scattered_images(draw):
    """(payload, URLs in scene order): one image per scene, each in its own object with its scene number,
    the objects shuffled and each wrapped in a few arbitrary objects and lists."""
    count = draw(st.integers(min_value=1, max_value=6))
    numbers = draw(st.lists(st.integers(min_value=0, max_value=500), min_size=count, max_size=count, unique=True))
    urls = {n: f"https://cdn.example.com/{n}.png" for n in numbers}
    items = []
    for n in numbers:
        item = {draw(st.sampled_from(["sceneNumber", "scene_number", "number", "index"])): n,
                draw(IMAGE_KEYS): urls[n], "imagePrompt": "https://cdn.example.com/prompt.png"}
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            item = draw(st.sampled_from([lambda v: [v], lambda v: {draw(WRAPPER_KEYS): v}]))(item)
        items.append(item)
    order = draw(st.permutations(range(count)))
    return {"id": "p1", "story": {"title": "T"}, draw(WRAPPER_KEYS): [items[i] for i in order]}, [
        urls[n] for n in sorted(numbers)]


@FUZZ
@given(scattered_images())
def test_scattered_images_come_back_in_scene_order(case):
    payload, expected = case
    assert [ref.value for ref in readers.find_images(payload)] == expected
    assert [ref.value for ref in readers.read_session(payload).images] == expected
    assert [ref.value for ref in readers.read_image_refs(json.dumps(payload))] == expected
