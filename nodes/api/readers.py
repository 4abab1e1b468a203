"""Tolerant readers: decoded 3DLabs JSON in, the pack's plain values (``models``) out.

This module is the one place for every assumption the pack makes about the API's undocumented
response shapes (DESIGN.md, "Read tolerantly, write exactly"): job envelopes, status words,
progress forms, story, scene-plan, image-result, session and workspace shapes. When the API turns
out to answer in a shape nobody foresaw, the fix belongs here and nowhere else.

Rules every reader keeps:

* Input is whatever ``json.loads`` produced (dicts, lists, strings, numbers, booleans, None), or
  anything else a caller passes by mistake. The only exception a reader raises is
  :class:`ResponseFormatError`, with the keys it saw, never a ``KeyError``/``TypeError``/...
* Every walk into nested values is bounded in depth and in list length, and nothing here calls
  ``str``/``repr``/``json.dumps`` on an arbitrary nested value, so a hostile or broken payload
  (a list nested a million deep, a list of a million items) costs little and cannot blow the stack.
* ``None``, empty strings and empty containers count as "absent": the next synonym is tried.
* Values keep the raw payload they were read from, because a later reader (or a user looking at
  result_json) may need fields that are ignored here.

Framework-free: no torch, no requests, no ComfyUI.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .errors import ResponseFormatError
from .models import ImageRef, Job, Project, Scene, ScenePlan, Story, Workspace

__all__ = [
    "STATUS_SYNONYMS",
    "normalize_status",
    "read_image_refs",
    "read_job",
    "read_job_id",
    "read_progress",
    "read_scene_plan",
    "read_session",
    "read_sessions",
    "read_story",
    "read_workspaces",
    "unwrap",
]

# --- limits ----------------------------------------------------------------------------------
# The API's JSON is shallow (a job, its result, a list of images or scenes); these bounds are far
# above anything legitimate and exist only so that garbage cannot cost much.

_MAX_DEPTH = 6  # container levels a recursive walk descends
_MAX_ENVELOPES = 3  # wrapper levels stripped: {data: {job: {...}}} needs two
_MAX_ITEMS = 10_000  # elements of one list examined
_MAX_IMAGES = 1_000  # image references returned by one reader call
_MAX_MESSAGE = 2_000  # characters kept of an error message from the server
_MAX_ID = 200  # characters of an id (same bound as validation.optional_id)
_MAX_JSON_TEXT = 20_000_000  # a JSON document inside a string is decoded only below this size
_MAX_URL = 16_384  # presigned CDN URLs run to a few kB; longer is not a URL we want to fetch

# --- vocabulary --------------------------------------------------------------------------------

# Status synonyms, exactly DESIGN.md's lists. Matching ignores case and treats spaces, hyphens,
# dots and underscores alike ("In-Progress" == "IN_PROGRESS" == "in progress" == "inprogress").
STATUS_SYNONYMS: dict[str, tuple[str, ...]] = {
    "queued": ("pending", "queued", "waiting", "created", "starting", "in_queue", "throttled"),
    "running": ("processing", "running", "in_progress", "generating", "started"),
    "succeeded": ("completed", "complete", "succeeded", "success", "done", "finished", "ready"),
    "failed": ("failed", "error", "errored", "rejected"),
    "canceled": ("canceled", "cancelled", "aborted", "expired"),
}
_STATUS_LOOKUP: dict[str, str] = {
    form: canonical
    for canonical, words in STATUS_SYNONYMS.items()
    for word in words
    for form in (word, word.replace("_", ""))
}

_STATUS_KEYS = ("status", "state", "jobStatus", "job_status")
_PROGRESS_KEYS = ("progress", "percent", "percentage", "progressPercent", "progress_percent")
# `data` is deliberately not here: it is an envelope unless the job has a status (see _job_result).
_RESULT_KEYS = ("result", "results", "output", "outputs")
_ERROR_KEYS = ("error", "errors", "errorMessage", "error_message", "failureReason", "failure_reason")
_JOB_ID_KEYS = ("jobId", "job_id", "jobID", "id")
_ENVELOPE_KEYS = ("job", "data")

_ERROR_MESSAGE_KEYS = ("message", "detail", "details", "error", "reason", "msg", "description", "title")
_ERROR_CODE_KEYS = ("code", "type", "status")

# Story fields, in the order they appear in the rendered text.
_STORY_TITLE_KEYS = ("title", "headline")
_STORY_LOGLINE_KEYS = ("logline", "tagline", "premise", "hook")
_STORY_SUMMARY_KEYS = ("synopsis", "summary", "description", "plot")
_STORY_BODY_KEYS = ("script", "narration", "text", "content", "body", "fullText", "full_text",
                    "storyText", "story_text", "story")
_STORY_PARAGRAPH_KEYS = ("paragraphs",)
_STORY_SECTION_KEYS = ("sections", "beats", "chapters", "scenes", "acts", "parts")
_SECTION_HEADING_KEYS = ("heading", "title", "name", "beat")
_SECTION_TEXT_KEYS = ("narration", "text", "content", "description", "summary", "body", "script")
_STORY_CONTENT_KEYS = (_STORY_TITLE_KEYS + _STORY_LOGLINE_KEYS + _STORY_SUMMARY_KEYS + _STORY_BODY_KEYS
                       + _STORY_PARAGRAPH_KEYS + _STORY_SECTION_KEYS)
# The content keys minus "story", which may be either the story's text or a wrapper around it.
_STORY_OWN_KEYS = tuple(key for key in _STORY_CONTENT_KEYS if key != "story")
# Keys that may wrap the story object (a job result like {"story": {...}, "usage": {...}}).
_STORY_WRAPPER_KEYS = ("story", "storyData", "story_data", "result", "data", "output")

# Scene plan fields.
_PLAN_LIST_KEYS = ("scenes", "plan", "shots", "scenePlan", "scene_plan", "storyboard")
_PLAN_WRAPPER_KEYS = ("scenePlan", "scene_plan", "plan", "result", "data", "output")
_SCENE_NUMBER_KEYS = ("sceneNumber", "scene_number", "number", "index", "scene", "sceneIndex", "scene_index")
_SCENE_PROMPT_KEYS = ("imagePrompt", "image_prompt", "visualPrompt", "visual_prompt", "prompt",
                      "description", "visual", "imageDescription", "image_description")
_SCENE_NARRATION_KEYS = ("narration", "voiceover", "voiceOver", "voice_over", "text", "script",
                         "dialogue", "dialog")
_SCENE_TITLE_KEYS = ("title", "heading", "name")
_SCENE_SECONDS_KEYS = ("duration", "durationSeconds", "duration_seconds", "seconds", "length",
                       "durationSec", "duration_sec")
_SCENE_MS_KEYS = ("durationMs", "duration_ms", "durationMS")

# Image result fields. A dict with one of the URL or base64 keys describes one image.
_IMAGE_URL_KEYS = ("url", "imageUrl", "image_url", "imageURL", "uri", "href", "src")
_IMAGE_B64_KEYS = ("base64", "b64_json", "imageBase64", "image_base64", "b64")
_IMAGE_CONTAINER_KEYS = ("images", "imageUrls", "image_urls", "urls", "image", "output", "outputs",
                         "result", "results", "data")

# Workspaces and sessions.
_LIST_WRAPPER_KEYS = ("data", "result")
_WORKSPACE_LIST_KEYS = ("workspaces", "data", "items", "results")
_WORKSPACE_ID_KEYS = ("id", "workspaceId", "workspace_id", "_id")
_WORKSPACE_NAME_KEYS = ("name", "title", "slug")
_SESSION_LIST_KEYS = ("sessions", "projects", "data", "items", "results")
_SESSION_WRAPPER_KEYS = ("session", "project", "data")
_SESSION_ID_KEYS = ("id", "sessionId", "session_id", "_id", "projectId", "project_id")
_SESSION_NAME_KEYS = ("name", "title", "topic", "projectName", "project_name")
_SESSION_CREATED_KEYS = ("createdAt", "created_at", "created", "updatedAt", "updated_at")
_SESSION_STORY_KEYS = ("story", "storyData", "story_data", "script")
_SESSION_PLAN_KEYS = ("scenePlan", "scene_plan", "plan", "scenes", "shots", "storyboard")
_SESSION_IMAGE_KEYS = ("images", "imageUrls", "image_urls", "generatedImages", "generated_images")

# --- small helpers -----------------------------------------------------------------------------

# Ids go into URL paths (/api/jobs/:id): refuse anything that could change the path or the query.
_ID_RE = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._:~+=@-]{{0,{_MAX_ID - 1}}}")


def _is_number(value: Any) -> bool:
    """True for JSON numbers; ``True``/``False`` are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    """A non-empty stripped string, or None."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def _first(mapping: dict, keys: Iterable[str], convert: Callable[[Any], Any]) -> Any:
    """The first ``convert(mapping[key])`` that is not None, trying ``keys`` in order."""
    for key in keys:
        if key in mapping:
            value = convert(mapping[key])
            if value is not None:
                return value
    return None


def _dict_or_none(value: Any) -> dict | None:
    return value if isinstance(value, dict) and value else None


def _first_present(mapping: dict, keys: Iterable[str]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if not _absent(value):
            return value
    return None


def _has_any(mapping: dict, keys: Iterable[str]) -> bool:
    return any(not _absent(mapping.get(key)) for key in keys)


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _seen(value: Any) -> str:
    """What a payload looked like, for an error message: its keys, never its (maybe huge) values."""
    if isinstance(value, dict):
        names = []
        for index, key in enumerate(value):
            if index >= 30:
                names.append("...")
                break
            names.append(key[:40] if isinstance(key, str) else _kind(key))
        return "keys seen: " + ", ".join(names) if names else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str):
        return f"a string of {len(value)} character(s)"
    return f"a {_kind(value)}"


def _maybe_json(value: Any) -> Any:
    """Decode a string that holds a JSON object or list; anything else gives None.

    Some back ends store structured results as JSON text; a string that does not start like an
    object or a list is plain text and is left alone.
    """
    if not isinstance(value, str) or len(value) > _MAX_JSON_TEXT:
        return None
    stripped = value.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        decoded = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter allows
        return None
    return decoded if isinstance(decoded, (dict, list)) else None


def _id(value: Any) -> str | None:
    """An id as a string (ints are accepted: some back ends number their jobs), or None."""
    if _is_number(value):
        # Floats are not ids; huge ints would also hit int->str digit limits.
        if isinstance(value, int) and abs(value) < 10**30:
            return str(value)
        return None
    text = _text(value)
    if text is not None and _ID_RE.fullmatch(text):
        return text
    return None


def _read_id(mapping: dict, keys: Iterable[str]) -> str | None:
    return _first(mapping, keys, _id)


def _short_number(value: int | float) -> str:
    if isinstance(value, int) and abs(value) >= 10**18:
        return "a very large number"
    return str(value)


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- status and progress -------------------------------------------------------------------------


def normalize_status(raw: Any, *, has_error: bool = False, has_result: bool = False,
                     has_progress: bool = False) -> str:
    """Map the API's status word to queued / running / succeeded / failed / canceled.

    Known words (DESIGN.md's synonym lists) win over everything else, whatever else the job says.
    For an unknown word, or none at all: a non-null error means failed; a result without an error
    means succeeded; otherwise the job is still going, and the caller keeps polling. That last case
    answers "running" when the job reports progress above zero (``has_progress``) and "queued"
    otherwise: both keep the poll loop going, only the text shown to the user differs.
    A status given as an object (``{"state": "done"}``) is read one level down.
    """
    if isinstance(raw, dict):
        raw = _first(raw, ("state", "status", "name", "value"), _text)
    if isinstance(raw, str):
        key = re.sub(r"[\s._-]+", "_", raw[:64].strip().lower()).strip("_")
        canonical = _STATUS_LOOKUP.get(key) or _STATUS_LOOKUP.get(key.replace("_", ""))
        if canonical:
            return canonical
    if has_error:
        return "failed"
    if has_result:
        return "succeeded"
    return "running" if has_progress else "queued"


_PERCENT_TEXT = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(%?)")
_RATIO_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")


def _fraction(number: int | float, *, percent: bool = False) -> float | None:
    """A number as a 0..1 fraction: above 1 (or ``percent``) it is a percentage. Clamped."""
    if isinstance(number, int):
        # Ints apart, without float(): 10**400 would overflow the conversion.
        if number <= 0:
            return 0.0
        if number >= 100:
            return 1.0
        return number / 100 if (percent or number > 1) else 1.0
    if not math.isfinite(number):
        return None
    if percent or number > 1:
        number = number / 100
    return min(1.0, max(0.0, float(number)))


def read_progress(value: Any) -> float | None:
    """Progress as a fraction in 0..1, or None when the API gives none (or nothing readable).

    Accepted: a 0-1 fraction; a 0-100 percentage; strings "42%", "42", "0.42", "3/10"; an object
    with percent/percentage/progress/value, or current/total. A number above 1 is a percentage.
    Exactly 1 is ambiguous (100% as a fraction, or 1%): it is read as the fraction 1.0, because
    APIs that count in fractions end on 1 while 1% lasts a moment, and status, not progress, decides
    when a job is done. "1%" with a percent sign is 0.01. Values are clamped to 0..1; booleans, NaN
    and infinities give None.
    """
    if value is None or isinstance(value, bool):
        return None
    if _is_number(value):
        return _fraction(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text or len(text) > 64:
            return None
        ratio = _RATIO_TEXT.fullmatch(text)
        if ratio:
            done, total = float(ratio.group(1)), float(ratio.group(2))
            if total <= 0 or not math.isfinite(done / total):
                return None
            return _fraction(min(done / total, 1.0))  # a ratio is a fraction, even past 1
        match = _PERCENT_TEXT.fullmatch(text)
        if not match:
            return None
        try:
            number = float(match.group(1))
        except (ValueError, OverflowError):
            return None
        return _fraction(number, percent=bool(match.group(2)))
    if isinstance(value, dict):
        for key in ("percent", "percentage"):
            if _is_number(value.get(key)):
                return _fraction(value[key], percent=True)
        for key in ("progress", "value", "fraction"):
            if key in value and not isinstance(value[key], dict):  # one level only
                found = read_progress(value[key])
                if found is not None:
                    return found
        done = _first(value, ("current", "completed", "done", "step"), lambda v: v if _is_number(v) else None)
        total = _first(value, ("total", "steps"), lambda v: v if _is_number(v) else None)
        if done is not None and total is not None:
            try:
                ratio = float(done) / float(total)
            except (OverflowError, ZeroDivisionError):
                return None
            return _fraction(min(ratio, 1.0)) if math.isfinite(ratio) else None
    return None


# --- job envelopes ---------------------------------------------------------------------------


def _job_keys_besides(mapping: dict, skip: str) -> bool:
    keys = _STATUS_KEYS + _PROGRESS_KEYS + _RESULT_KEYS + _ERROR_KEYS + _JOB_ID_KEYS
    return any(key != skip and not _absent(mapping.get(key)) for key in keys)


def _looks_like_job(mapping: dict) -> bool:
    return _has_any(mapping, _STATUS_KEYS + _PROGRESS_KEYS + _RESULT_KEYS + _ERROR_KEYS + _JOB_ID_KEYS)


def unwrap(payload: Any) -> Any:
    """Strip job envelopes: ``{job: {...}}``, ``{data: {...}}``, ``{data: {job: {...}}}``.

    A wrapper is descended only when the outer object has no status of its own, so the job's
    ``data`` or ``result`` is never mistaken for the job. ``job``/``data`` are descended when the
    inner object looks like a job or the outer one carries nothing job-like besides the wrapper.
    ``result`` is descended only in the narrow case of an outer object with nothing job-like but
    the ``result``, whose value has a status of its own (``{"result": {"status": ...}}``): any
    other ``result`` is the job's result. Keys of the envelope that the job lacks (a sibling
    ``result`` or ``error``) are carried into the unwrapped dict, which is a new dict; the payload
    is never modified. Anything that is not such an envelope comes back unchanged.
    """
    current = payload
    for _ in range(_MAX_ENVELOPES):
        if not isinstance(current, dict) or _has_any(current, _STATUS_KEYS):
            break
        chosen = None
        for key in _ENVELOPE_KEYS:
            inner = current.get(key)
            if not isinstance(inner, dict) or not inner:
                continue
            if _looks_like_job(inner) or not _job_keys_besides(current, key):
                chosen = key
                break
        if chosen is None:
            inner = current.get("result")
            if (isinstance(inner, dict) and _has_any(inner, _STATUS_KEYS)
                    and not _job_keys_besides(current, "result")):
                chosen = "result"
        if chosen is None:
            break
        merged = dict(current[chosen])
        for key, value in current.items():
            if key != chosen and key not in merged:
                merged[key] = value
        current = merged
    return current


def read_job_id(payload: Any) -> str:
    """The job id from a job-creating POST's answer: ``jobId`` / ``job_id`` / ``id``, bare or wrapped.

    Ints become strings. Ids must be at most 200 characters of letters, digits and ``._:~+=@-``
    (they go into URL paths); anything else is not an id. A bare string or int answer is taken as
    the id itself.
    """
    if isinstance(payload, (str, int)) and not isinstance(payload, bool):
        found = _id(payload)
        if found is not None:
            return found
        raise ResponseFormatError(f"the answer is a {_kind(payload)} that is not a job id")
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected an object with a job id, got {_seen(payload)}")
    body = unwrap(payload)
    found = _read_id(body, _JOB_ID_KEYS)
    if found is None:
        found = _first(body, ("job",), _id)  # {"job": "abc"}
    if found is None:
        raise ResponseFormatError(f"the answer carries no job id ({_seen(body)})")
    return found


def _error_code(value: Any) -> str | None:
    if _is_number(value):
        return _short_number(value)
    text = _text(value)
    return _clip(text, 80) if text else None


def _render_error(value: Any, depth: int = 0) -> str | None:
    """A server error (string, object, list) as one readable line, or None for "no error"."""
    if value is None or value is False:
        return None
    if value is True:
        return "error (no detail given)"
    if isinstance(value, str):
        text = value.strip()
        return _clip(text) if text else None
    if _is_number(value):
        return _short_number(value)
    if depth >= 3:
        return None
    if isinstance(value, dict):
        message = _first(value, _ERROR_MESSAGE_KEYS, lambda v: _render_error(v, depth + 1))
        code = _first(value, _ERROR_CODE_KEYS, _error_code)
        if message and code and code not in message:
            return _clip(f"{message} ({code})")
        if message or code:
            return message or code
        parts = []
        for key, item in itertools.islice(value.items(), 8):
            if isinstance(key, str) and (_text(item) or _is_number(item)):
                parts.append(f"{key[:40]}: {_render_error(item, depth + 1)}")
        return _clip("; ".join(parts)) if parts else None
    if isinstance(value, list):
        parts: list[str] = []
        for item in value[:10]:
            rendered = _render_error(item, depth + 1)
            if rendered and rendered not in parts:
                parts.append(rendered)
        return _clip("; ".join(parts)) if parts else None
    return None


def _job_result(body: dict) -> Any:
    for key in _RESULT_KEYS:
        if body.get(key) is not None:
            return body[key]
    # With a status beside it, `data` was not an envelope (unwrap did not descend): it is the result.
    if _has_any(body, _STATUS_KEYS) and body.get("data") is not None:
        return body["data"]
    return None


def read_job(payload: Any, job_id: str | None = None) -> Job:
    """A job from ``GET /api/jobs/:id`` (or any answer carrying one), bare or in an envelope.

    ``job_id`` (the id the caller asked for) wins over an id in the payload, so the journal's id
    is kept; without either the id is "". ``raw`` is the unwrapped dict. A payload with an error
    and no status (``{"error": "Job not found"}``) is failed; a failed job without an error field
    takes its ``message``/``detail`` as the error. An object with nothing job-like in it (no
    status, progress, result, error or id) is unreadable rather than "still queued", so that a
    wrong answer is reported at once instead of being polled until the timeout.
    """
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected a job object, got {_seen(payload)}")
    body = unwrap(payload)
    if not _looks_like_job(body):
        raise ResponseFormatError(f"the job answer has no status, result or error ({_seen(body)})")
    found_id = _read_id(body, _JOB_ID_KEYS)
    raw_status = _first_present(body, _STATUS_KEYS)
    progress = _first(body, _PROGRESS_KEYS, read_progress)
    result = _job_result(body)
    error = _render_error(_first_present(body, _ERROR_KEYS))
    status = normalize_status(raw_status, has_error=error is not None, has_result=not _absent(result),
                              has_progress=progress is not None and progress > 0)
    if status == "failed" and error is None:
        error = _first(body, ("message", "detail", "reason"), _render_error)
    own_id = _id(job_id) if job_id is not None else None
    return Job(id=own_id or found_id or "", status=status, progress=progress, result=result,
               error=error, raw=body)


# --- story -------------------------------------------------------------------------------------


def _find_story(result: Any) -> Any:
    """The story object inside a job result.

    Rule: a string holding a JSON object or list is decoded. An object that has story content of
    its own (title, logline, synopsis, script, paragraphs, sections, ...) *is* the story. Otherwise
    the first non-empty value under story / storyData / story_data / result / data / output is
    looked into, at most three levels. So ``{"story": {...}, "usage": {...}}`` gives the inner
    object, ``{"story": "Once..."}`` gives the string, and ``{"title": "T", "story": "Once..."}``
    is itself the story (its ``story`` is its text).
    """
    current = result
    for _ in range(_MAX_ENVELOPES + 1):
        decoded = _maybe_json(current)
        if decoded is not None:
            current = decoded
        if not isinstance(current, dict) or _has_any(current, _STORY_OWN_KEYS):
            return current
        inner = _first_present(current, _STORY_WRAPPER_KEYS)
        if inner is None or not isinstance(inner, (dict, list, str)):
            return current
        current = inner
    return current


def _text_block(value: Any) -> str | None:
    """A string, or a list of strings joined by newlines (a script given line by line)."""
    text = _text(value)
    if text is not None:
        return text
    if isinstance(value, list):
        lines = [line for line in (_text(item) for item in value[:_MAX_ITEMS]) if line]
        return "\n".join(lines) or None
    return None


def _section_lines(items: list) -> list[str]:
    """Beats as "1. Heading\\nnarration", numbered in order."""
    blocks: list[str] = []
    for item in items[:_MAX_ITEMS]:
        heading = body = None
        if isinstance(item, dict):
            heading = _first(item, _SECTION_HEADING_KEYS, _text)
            body = _first(item, _SECTION_TEXT_KEYS, _text_block)
            if body is None:
                body = _first(item, ("paragraphs",), _text_block)
        else:
            body = _text(item)
        if heading is None and body is None:
            continue
        number = len(blocks) + 1
        if heading and body:
            blocks.append(f"{number}. {heading}\n{body}")
        else:
            blocks.append(f"{number}. {heading or body}")
    return blocks


# Case-sensitive on purpose: "createdAt" is a timestamp, "beat" and "format" are not.
_SKIP_LEAF_KEY = re.compile(r"^_?id$|Id$|ID$|_id$|^url$|Url$|URL$|_url$|^uri$|^href$|At$|_at$|^created|"
                            r"^updated|^model$|^provider$|^status$|^type$|^version$|^lang(uage)?$")


def _string_leaves(value: Any, depth: int, out: list[str], budget: list[int]) -> None:
    """Readable strings anywhere in an unfamiliar story object, skipping ids, URLs and timestamps."""
    if budget[0] <= 0 or depth > 4:
        return
    if isinstance(value, str):
        text = value.strip()
        if text and text not in out:
            out.append(text)
            budget[0] -= 1
    elif isinstance(value, list):
        for item in value[:200]:
            _string_leaves(item, depth + 1, out, budget)
    elif isinstance(value, dict):
        for key, item in itertools.islice(value.items(), 200):
            if isinstance(key, str) and not _SKIP_LEAF_KEY.search(key):
                _string_leaves(item, depth + 1, out, budget)


def _story_text(story: Any) -> tuple[str, str]:
    """(text, title) rendered from whatever fields the story object has."""
    if isinstance(story, str):
        return story.strip(), ""
    if isinstance(story, list):
        return "\n\n".join(_section_lines(story)), ""
    title = _first(story, _STORY_TITLE_KEYS, _text) or ""
    blocks: list[str] = [title] if title else []

    def add(block: str | None) -> None:
        if block and block not in blocks:
            blocks.append(block)

    for key in _STORY_LOGLINE_KEYS + _STORY_SUMMARY_KEYS + _STORY_BODY_KEYS:
        add(_text_block(story.get(key)))
    paragraphs = story.get("paragraphs")
    if isinstance(paragraphs, list):
        for paragraph in paragraphs[:_MAX_ITEMS]:
            add(_text(paragraph))
    for key in _STORY_SECTION_KEYS:
        sections = story.get(key)
        if isinstance(sections, list) and sections:
            lines = _section_lines(sections)
            if lines:
                blocks.append("\n\n".join(lines))
                break  # one list of beats: a story may repeat them as scenes
    if len(blocks) <= (1 if title else 0):
        # No familiar field beyond a title: fall back to every readable string in the object.
        leaves: list[str] = []
        _string_leaves({k: v for k, v in story.items() if k not in _STORY_TITLE_KEYS}, 0, leaves, [200])
        blocks.extend(leaf for leaf in leaves if leaf not in blocks)
    return "\n\n".join(blocks), title


def read_story(result: Any) -> Story:
    """A story from a story job's result; ``raw`` is exactly the object to send to scene-planning.

    See :func:`_find_story` for how the story object is found inside the result. ``text`` is plain
    text: the title, a blank line, logline / synopsis / body text / paragraphs, then each beat as
    "1. Heading" and its narration on the next line, blocks separated by blank lines. A bare string
    story is its own text and raw value.
    """
    story = _find_story(result)
    if isinstance(story, str):
        if not story.strip():
            raise ResponseFormatError("the story is an empty string")
        return Story(raw=story, text=story.strip())
    if not isinstance(story, (dict, list)) or not story:
        raise ResponseFormatError(f"no story object in the result ({_seen(story)})")
    text, title = _story_text(story)
    if not text:
        # Opaque or not, a story always has words; an object without any is not a story.
        raise ResponseFormatError(f"the story has no readable text ({_seen(story)})")
    return Story(raw=story, text=text, title=title)


# --- scene plan --------------------------------------------------------------------------------


def _find_scene_list(result: Any) -> list | None:
    """The list of scenes: a bare list, or under scenes / plan / shots / ..., at most 3 wrappers deep."""
    current = result
    for _ in range(_MAX_ENVELOPES + 1):
        decoded = _maybe_json(current)
        if decoded is not None:
            current = decoded
        if isinstance(current, list):
            return current
        if not isinstance(current, dict):
            return None
        for key in _PLAN_LIST_KEYS:
            if isinstance(current.get(key), list):
                return current[key]
        for key in _PLAN_WRAPPER_KEYS:
            inner = current.get(key)
            inner = inner if isinstance(inner, dict) else _maybe_json(inner)  # JSON text is decoded once
            if inner is not None:
                current = inner
                break
        else:
            return None
    return None


def _scene_number(value: Any) -> int | None:
    """A scene number from 3, 3.0, "3", "Scene 3"; negative, fractional or absurd values give None."""
    if _is_number(value):
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                return None
            value = int(value)
        return value if 0 <= value < 1_000_000 else None
    text = _text(value)
    if text is not None:
        match = re.search(r"\d{1,6}", text[:64])
        return int(match.group()) if match else None
    return None


_CLOCK = re.compile(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{1,2}(?:\.\d+)?)")
_WITH_UNIT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")
_UNIT_SECONDS = {"": None, "ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
                 "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
                 "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0}


def _duration(value: Any, default_unit: float = 1.0) -> float | None:
    """Seconds from 5, 5.5, "5s", "5.5", "500ms", "0:05", "1:02:03"; unreadable or negative -> None."""
    if _is_number(value):
        try:
            seconds = float(value) * default_unit
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    text = _text(value)
    if text is None or len(text) > 32:
        return None
    text = text.lower()
    clock = _CLOCK.fullmatch(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    match = _WITH_UNIT.fullmatch(text)
    if not match or match.group(2) not in _UNIT_SECONDS:
        return None
    unit = _UNIT_SECONDS[match.group(2)]
    return float(match.group(1)) * (default_unit if unit is None else unit)


def _dialogue(value: Any) -> str | None:
    """Narration may be dialogue: a list of lines or of {speaker, line} objects."""
    block = _text_block(value)
    if block is not None or not isinstance(value, list):
        return block
    lines = []
    for item in value[:_MAX_ITEMS]:
        if isinstance(item, dict):
            line = _first(item, ("line", "text", "content", "dialogue"), _text)
            speaker = _first(item, ("speaker", "character", "name"), _text)
            if line:
                lines.append(f"{speaker}: {line}" if speaker else line)
    return "\n".join(lines) or None


def _read_scene(item: Any, position: int) -> tuple[int | None, Scene] | None:
    if isinstance(item, str):
        prompt = item.strip()
        return (None, Scene(number=position, image_prompt=prompt)) if prompt else None
    if not isinstance(item, dict):
        return None
    number = _first(item, _SCENE_NUMBER_KEYS, _scene_number)
    narration = _first(item, _SCENE_NARRATION_KEYS, _dialogue) or ""
    prompt = _first(item, _SCENE_PROMPT_KEYS, _text)
    if prompt is None:
        # No image prompt: the narration (or the title) is the best description of the picture;
        # with neither the scene is kept with an empty prompt and the node layer says so.
        prompt = narration or _first(item, _SCENE_TITLE_KEYS, _text) or ""
    duration = _first(item, _SCENE_SECONDS_KEYS, _duration)
    if duration is None:
        duration = _first(item, _SCENE_MS_KEYS, lambda v: _duration(v, default_unit=0.001))
    scene = Scene(number=position, image_prompt=prompt, narration=narration, duration=duration, raw=item)
    return number, scene


def read_scene_plan(result: Any) -> ScenePlan:
    """A scene plan from a scene-planning job's result (``raw`` is the result as given).

    Scenes are numbered from their own number field; a scene without one takes its 1-based
    position. When the smallest explicit number is 0 the plan counts from 0, so every explicit
    number is shifted by one: scenes are 1-based everywhere in the pack (the API's sceneNumber is).
    Scenes are sorted by number, stably (equal numbers keep the plan's order). A scene given as a
    bare string is its image prompt. Items that are neither objects nor strings are skipped.
    """
    items = _find_scene_list(result)
    if items is None:
        raise ResponseFormatError(f"no list of scenes in the scene plan ({_seen(result)})")
    read: list[tuple[int | None, Scene]] = []
    for position, item in enumerate(items[:_MAX_ITEMS], start=1):
        found = _read_scene(item, position)
        if found is not None:
            read.append(found)
    if not read:
        raise ResponseFormatError("the scene plan has no scenes")
    explicit = [number for number, _ in read if number is not None]
    shift = 1 if explicit and min(explicit) == 0 else 0
    scenes = []
    for number, scene in read:
        if number is not None:
            scene.number = number + shift
        scenes.append(scene)
    scenes.sort(key=lambda scene: scene.number)
    return ScenePlan(scenes=scenes, raw=result)


# --- images ------------------------------------------------------------------------------------

_DATA_URL = re.compile(r"data:(?:image/[a-z0-9.+-]+|application/octet-stream)?(?:;[a-z0-9=._+-]+)*;base64,",
                       re.IGNORECASE)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
# Openings of base64-encoded PNG, JPEG, GIF, WEBP and TIFF files: a bare string outside a base64
# key is taken as an image only when it starts like one (a prompt or a word is valid base64 too).
_IMAGE_BASE64_MAGIC = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "SUkqAA", "TU0AKg")


def _plausible_base64(text: str, *, need_magic: bool) -> bool:
    compact = re.sub(r"\s+", "", text)
    if len(compact) < 16 or len(compact) % 4 == 1 or not _BASE64.fullmatch(compact):
        return False
    return not need_magic or compact.startswith(_IMAGE_BASE64_MAGIC)


def _classify(value: str, *, base64_key: bool) -> ImageRef | None:
    """One string as an image reference, or None.

    http(s) URLs with a host; base64 ``data:`` URLs of an image, octet-stream or unnamed media type;
    raw base64 under a base64 key, or anywhere when it starts like an image file. Every other
    scheme (file:, ftp:, javascript:, ...), relative paths and text are refused: a result URL is
    fetched by the pack, and it must not be talked into reading local files or other protocols.
    """
    text = value.strip()
    if not text:
        return None
    head = text[:16].lower()
    if head.startswith("data:"):
        match = _DATA_URL.match(text)
        if match and _plausible_base64(text[match.end():], need_magic=False):
            return ImageRef("data", text)
        return None
    if head.startswith(("http://", "https://")):
        if len(text) > _MAX_URL or _UNSAFE_URL_CHARS.search(text):
            return None
        try:
            parts = urlsplit(text)
            host = parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return None
        return ImageRef("url", text) if parts.scheme in ("http", "https") and host else None
    if _SCHEME.match(text):
        return None
    if _plausible_base64(text, need_magic=not base64_key):
        return ImageRef("base64", text)
    return None


def _direct_image(mapping: dict) -> ImageRef | None:
    """The one image an object describes through a URL key or a base64 key (URL keys first)."""
    for key in _IMAGE_URL_KEYS + _IMAGE_B64_KEYS:
        value = mapping.get(key)
        if isinstance(value, str):
            ref = _classify(value, base64_key=key in _IMAGE_B64_KEYS)
            if ref is not None:
                return ref
    return None


def _add_image(ref: ImageRef | None, out: list[ImageRef], seen: set[tuple[str, str]]) -> None:
    if ref is not None and (ref.kind, ref.value) not in seen and len(out) < _MAX_IMAGES:
        seen.add((ref.kind, ref.value))
        out.append(ref)


def _collect_images(value: Any, depth: int, out: list[ImageRef], seen: set[tuple[str, str]],
                    base64_key: bool = False) -> None:
    if len(out) >= _MAX_IMAGES:
        return
    if isinstance(value, str):
        _add_image(_classify(value, base64_key=base64_key), out, seen)
        return
    if depth >= _MAX_DEPTH:
        return
    if isinstance(value, list):
        for item in value[:_MAX_ITEMS]:
            _collect_images(item, depth + 1, out, seen, base64_key)
        return
    if not isinstance(value, dict):
        return
    ref = _direct_image(value)
    if ref is not None:
        # An object with a URL or base64 of its own is one image; its other keys (thumbnails,
        # metadata) are not looked into, so one image is not returned twice in two forms.
        _add_image(ref, out, seen)
        return
    for key in _IMAGE_URL_KEYS + _IMAGE_B64_KEYS + _IMAGE_CONTAINER_KEYS:
        inner = value.get(key)
        if isinstance(inner, (list, dict)) or (isinstance(inner, str) and key in _IMAGE_CONTAINER_KEYS):
            _collect_images(inner, depth + 1, out, seen, key in _IMAGE_B64_KEYS)


def _image_refs(value: Any) -> list[ImageRef]:
    out: list[ImageRef] = []
    decoded = _maybe_json(value)
    _collect_images(value if decoded is None else decoded, 0, out, set())
    return out


def read_image_refs(result: Any) -> list[ImageRef]:
    """Every result image, in order, without duplicates.

    Shapes: a URL string; a ``data:`` URL; an object with url / imageUrl / image_url / uri / href /
    src; raw base64 under base64 / b64_json / imageBase64 / image_base64 (kind "base64"); lists of
    any of these under images / output / outputs / urls / ...; and the same nested under result /
    data / image / output (up to six levels). See :func:`_classify` for which strings are refused.
    Nothing usable raises :class:`ResponseFormatError` naming the keys seen.
    """
    refs = _image_refs(result)
    if not refs:
        raise ResponseFormatError(f"no image URL or image data in the result ({_seen(result)})")
    return refs


# --- workspaces and sessions -------------------------------------------------------------------


def _find_list(payload: Any, keys: tuple[str, ...]) -> list | None:
    """A bare list, a list under one of ``keys``, or the same inside data / result."""
    current = payload
    for _ in range(2):
        if isinstance(current, list):
            return current
        if not isinstance(current, dict):
            return None
        for key in keys:
            if isinstance(current.get(key), list):
                return current[key]
        current = _first(current, _LIST_WRAPPER_KEYS, _dict_or_none)
    return None


def read_workspaces(payload: Any) -> list[Workspace]:
    """Workspaces from ``GET /api/workspaces``: a bare list, or under workspaces / data / items.

    An item is an object with an id (id / workspaceId / workspace_id / _id), a membership record
    with such an object under workspace / organization, or a bare id; items without an id are
    skipped. An empty list is an empty answer, not an error; a non-empty list of
    which nothing is readable is an error.
    """
    items = _find_list(payload, _WORKSPACE_LIST_KEYS)
    if items is None:
        if isinstance(payload, dict) and _read_id(payload, _WORKSPACE_ID_KEYS):
            items = [payload]  # a single workspace object instead of a list
        else:
            raise ResponseFormatError(f"no list of workspaces in the answer ({_seen(payload)})")
    workspaces = []
    for item in items[:_MAX_ITEMS]:
        if isinstance(item, dict):
            if _read_id(item, _WORKSPACE_ID_KEYS) is None:
                # A membership record ({"workspace": {...}, "role": ...}) names its workspace inside.
                item = _first(item, ("workspace", "organization"), _dict_or_none) or item
            workspace_id = _read_id(item, _WORKSPACE_ID_KEYS)
            if workspace_id is not None:
                name = _first(item, _WORKSPACE_NAME_KEYS, _text) or ""
                workspaces.append(Workspace(id=workspace_id, name=name, raw=item))
        else:
            workspace_id = _id(item)
            if workspace_id is not None:
                workspaces.append(Workspace(id=workspace_id))
    if items and not workspaces:
        raise ResponseFormatError(f"no workspace in the answer has an id ({_seen(items[0])})")
    return workspaces


def _timestamp(value: Any) -> str | None:
    """An ISO string as given, or an epoch number (seconds, or milliseconds when above 1e11) as UTC ISO."""
    if isinstance(value, dict):  # Firestore-style {"_seconds": ..., "_nanoseconds": ...}
        value = _first(value, ("_seconds", "seconds"), lambda v: v if _is_number(v) else None)
    text = _text(value)
    if text is not None:
        if not re.fullmatch(r"\d{9,13}(?:\.\d+)?", text):
            return _clip(text, 64)
        value = float(text)
    if not _is_number(value):
        return None
    try:
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            return None
        if seconds > 1e11:
            seconds /= 1000.0
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _project_header(item: dict) -> tuple[str | None, str, str]:
    return (_read_id(item, _SESSION_ID_KEYS), _first(item, _SESSION_NAME_KEYS, _text) or "",
            _first(item, _SESSION_CREATED_KEYS, _timestamp) or "")


def read_sessions(payload: Any) -> list[Project]:
    """Projects from ``GET /api/session/list``: under sessions / projects / data, or a bare list.

    Only the header of each project is read (id, name, created); ``raw`` keeps the rest. Items
    without an id are skipped; an empty list is fine, a non-empty unreadable one is an error.
    """
    items = _find_list(payload, _SESSION_LIST_KEYS)
    if items is None:
        raise ResponseFormatError(f"no list of sessions in the answer ({_seen(payload)})")
    projects = []
    for item in items[:_MAX_ITEMS]:
        if not isinstance(item, dict):
            continue
        project_id, name, created = _project_header(item)
        if project_id is not None:
            projects.append(Project(id=project_id, name=name, created=created, raw=item))
    if items and not projects:
        raise ResponseFormatError(f"no session in the answer has an id ({_seen(items[0])})")
    return projects


def _unwrap_session(payload: dict) -> dict:
    current = payload
    for _ in range(_MAX_ENVELOPES):
        if _read_id(current, _SESSION_ID_KEYS) is not None:
            break
        inner = _first(current, _SESSION_WRAPPER_KEYS, _dict_or_none)
        if inner is None:
            break
        current = inner
    return current


def read_session(payload: Any, session_id: str | None = None) -> Project:
    """A full project from ``GET /api/session/:id``, bare or under session / project / data.

    Each part is read tolerantly: a missing or unreadable story or scene plan is None, missing
    images an empty list; only a payload that is not an object, or that holds nothing but an
    error, raises. Images come first from the scenes (in scene order: imageUrl and the other image
    keys on each scene), then from a project-level images list, without duplicates. ``session_id``
    (the id asked for) is used when the payload carries none; the name falls back to the story's
    title.
    """
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected a session object, got {_seen(payload)}")
    body = _unwrap_session(payload)
    project_id, name, created = _project_header(body)

    story = None
    for key in _SESSION_STORY_KEYS:
        if not _absent(body.get(key)):
            try:
                story = read_story(body[key])
                break
            except ResponseFormatError:
                continue

    plan = None
    for key in _SESSION_PLAN_KEYS:
        if not _absent(body.get(key)):
            try:
                plan = read_scene_plan(body[key])
                break
            except ResponseFormatError:
                continue

    images: list[ImageRef] = []
    seen: set[tuple[str, str]] = set()
    for scene in plan.scenes if plan else []:
        _collect_images({k: v for k, v in scene.raw.items() if k in _IMAGE_URL_KEYS + _IMAGE_B64_KEYS
                         + ("image", "images", "imageUrls", "image_urls")}, 0, images, seen)
    for key in _SESSION_IMAGE_KEYS:
        if key in body:
            _collect_images(body[key], 0, images, seen)

    if project_id is None and story is None and plan is None and not images:
        # A 200 that carries only an error ({"error": "Session not found"}) is not an empty project.
        said = _render_error(_first_present(body, _ERROR_KEYS))
        if said:
            raise ResponseFormatError(f"the answer carries an error instead of a session: {said}")

    return Project(
        id=project_id or (_id(session_id) if session_id is not None else None) or "",
        name=name or (story.title if story else ""),
        created=created,
        story=story,
        scene_plan=plan,
        images=images,
        raw=body,
    )
