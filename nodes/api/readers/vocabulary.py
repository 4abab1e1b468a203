"""The words the readers know, as data: the status synonyms, one table per value they read (each field's
keys, most specific first, and the kind of value it holds), the wrappers values come in, and the patterns
that tell an image key from a key naming something else. Everything else is found by structure.

When the API uses a word nobody foresaw, add it to its field here (docs/readers.md says how; the walker,
basics.read, needs no change); docs/openapi.yaml describes where each is looked for.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..models import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED


class Field(NamedTuple):
    """A field of a value: the first of ``keys`` whose value reads as ``kind`` (basics.KINDS), else ``default``."""

    keys: tuple[str, ...]
    kind: str
    default: Any = None


# Status words, matched ignoring case, spaces, hyphens, dots and underscores ("In-Progress" == "in_progress").
STATUS_SYNONYMS: dict[str, tuple[str, ...]] = {
    QUEUED: ("pending", "queued", "waiting", "created", "starting", "in_queue", "throttled"),
    RUNNING: ("processing", "running", "in_progress", "generating", "started"),
    SUCCEEDED: ("completed", "complete", "succeeded", "success", "done", "finished", "ready"),
    FAILED: ("failed", "error", "errored", "rejected"),
    CANCELED: ("canceled", "cancelled", "aborted", "expired"),
}

# Keys more than one table looks under.
JOB_ID_KEYS = ("jobId", "job_id", "jobID", "id")
STATUS_KEYS = ("status", "state", "jobStatus", "job_status")
ERROR_KEYS = ("error", "errors", "errorMessage", "error_message", "failureReason", "failure_reason")
NAME_KEYS = ("name", "title", "projectName", "project_name", "topic", "slug")
TITLE_KEYS = ("title", "headline", "heading", "name")
NARRATION_KEYS = ("narration", "voiceover", "voiceOver", "voice_over", "text", "script", "dialogue", "dialog",
                  "content", "body", "summary")
WRAPPER_KEYS = ("result", "data", "output")
STORY_KEYS = ("story", "storyData", "story_data")
PLAN_KEYS = ("scenePlan", "scene_plan", "plan")
SCENE_LIST_KEYS = ("scenes", "plan", "shots", "scenePlan", "scene_plan", "storyboard")
SCENE_NUMBER = Field(("sceneNumber", "scene_number", "number", "index", "scene", "sceneIndex", "scene_index"),
                     "scene_number")

# Jobs. Any field of JOB makes an object a job; its envelopes are stripped by jobs.unwrap.
JOB = {
    "id": Field(JOB_ID_KEYS, "ident"),
    "status": Field(STATUS_KEYS, "present"),
    "progress": Field(("progress", "percent", "percentage", "progressPercent", "progress_percent"), "progress"),
    "result": Field(("result", "results", "output", "outputs"), "any"),
    "error": Field(ERROR_KEYS, "present"),
}
JOB_ENVELOPE_KEYS = ("job", "data")
NEW_JOB_ID = Field(JOB_ID_KEYS + ("job",), "ident")  # in a job-creating POST's answer
STATUS_OBJECT = Field(("state", "status", "name", "value"), "text")  # a status given as an object
FAILURE = Field(("message", "detail", "reason"), "error_text")  # what a failed job without an error says
# Progress given as an object: a 0-100 number, a value read like progress itself (one level), or done / total.
PROGRESS = {
    "percent": Field(("percent", "percentage"), "number"),
    "fraction": Field(("progress", "value", "fraction"), "flat_progress"),
    "done": Field(("current", "completed", "done", "step"), "number"),
    "total": Field(("total", "steps"), "number"),
}
ERROR = {  # an error given as an object
    "message": Field(("message", "detail", "details", "error", "reason", "msg", "description", "title"),
                     "error_text"),
    "code": Field(("code", "type", "status"), "code"),
}

# Stories: where one sits, its title and list of beats, its text fields in the order they are shown.
STORY_WRAPPER = Field(STORY_KEYS + WRAPPER_KEYS, "present")
STORY = {
    "title": Field(("title", "headline"), "text", ""),
    "beats": Field(("sections", "beats", "chapters", "scenes", "acts", "parts"), "beats"),
}
STORY_TEXT_KEYS = ("logline", "tagline", "premise", "hook", "synopsis", "summary", "description", "plot",
                   "script", "narration", "text", "content", "body", "fullText", "full_text", "storyText",
                   "story_text", "story")
PARAGRAPHS = "paragraphs"  # a list of strings, beside the text fields or in a beat
BEAT = {"heading": Field(TITLE_KEYS, "text"), "body": Field(NARRATION_KEYS + (PARAGRAPHS,), "block")}
# Keys of an unfamiliar story whose strings are not its text. Case-sensitive on purpose: "createdAt" is a
# timestamp, "beat" and "format" are not.
NOT_STORY_TEXT = re.compile(r"^_?id$|Id$|ID$|_id$|^url$|Url$|URL$|_url$|^uri$|^href$|At$|_at$|^created|^updated|"
                            r"^model$|^provider$|^status$|^type$|^version$|^lang(uage)?$")

# Scene plans: where the list of scenes sits, and one scene. Seconds win over milliseconds.
SCENE_LISTS = Field(SCENE_LIST_KEYS, "list")
PLAN_WRAPPER = Field(PLAN_KEYS + WRAPPER_KEYS, "object_or_json")
SCENE = {
    "number": SCENE_NUMBER,
    "narration": Field(NARRATION_KEYS, "dialogue", ""),
    "prompt": Field(("imagePrompt", "image_prompt", "visualPrompt", "visual_prompt", "prompt", "description",
                     "visual", "imageDescription", "image_description"), "text"),
    "title": Field(TITLE_KEYS, "text"),
    "seconds": Field(("duration", "durationSeconds", "duration_seconds", "seconds", "length", "durationSec",
                      "duration_sec"), "seconds"),
    "milliseconds": Field(("durationMs", "duration_ms", "durationMS"), "milliseconds"),
}
LINE = {"line": Field(("line", "text", "content", "dialogue"), "text"),  # one line of dialogue
        "speaker": Field(("speaker", "character", "name"), "text")}
DURATION_UNITS = {"ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "s": 1.0, "sec": 1.0,
                  "secs": 1.0, "second": 1.0, "seconds": 1.0, "m": 60.0, "min": 60.0, "mins": 60.0,
                  "minute": 60.0, "minutes": 60.0}

# Workspaces and projects (sessions), the lists they come in and the records around them.
LISTS = Field(("sessions", "projects", "workspaces", "items", "results", "data"), "list")
LIST_WRAPPER = Field(WRAPPER_KEYS, "object")
WORKSPACE = {"id": Field(("id", "workspaceId", "workspace_id", "_id"), "ident", ""),
             "name": Field(NAME_KEYS, "text", "")}
MEMBERSHIP = Field(("workspace", "organization"), "object")  # a membership record names its workspace inside
SESSION_WRAPPER = Field(("session", "project", "data"), "object")
PROJECT = {
    "id": Field(("id", "sessionId", "session_id", "_id", "projectId", "project_id"), "ident", ""),
    "name": Field(NAME_KEYS, "text", ""),
    "created": Field(("createdAt", "created_at", "created", "updatedAt", "updated_at"), "timestamp", ""),
}
SESSION_STORY_KEYS = STORY_KEYS + ("script",)
EPOCH = Field(("_seconds", "seconds"), "number")  # a Firestore-style timestamp {"_seconds": ..., "_nanoseconds": ...}

# Image keys, by the words in them (case-insensitive). A string counts as an image only under an
# image-like key; a subtree under a key that names something else is never looked into; thumbnails
# and the like count only when there is nothing else.
IMAGE_KEY = re.compile(r"image|img|url|uri|output|picture|photo|thumb|href|^src$|b64|base64|^results?$|^data$"
                       r"|^items$|^assets?$|^frames?$", re.IGNORECASE)
BASE64_KEY = re.compile(r"b64|base64", re.IGNORECASE)
NOT_IMAGE_KEY = re.compile(r"audio|video|voice|music|sound|speech|webhook|callback|avatar|logo|icon|profile|user"
                           r"|owner|author|creator|member|error|mask|input|reference|source|prompt", re.IGNORECASE)
SECONDARY_IMAGE_KEY = re.compile(r"thumb|preview|poster|cover", re.IGNORECASE)
# An object whose type says it is not an image ({"type": "audio", "url": ...}) is not looked into, nor is a
# URL whose path ends like a sound, a video or a document.
MEDIA_TYPE = Field(("type", "kind", "mimeType", "mime_type", "contentType", "content_type", "mediaType",
                    "media_type"), "text", "-")
NOT_IMAGE_TYPE = re.compile(r"audio|video|voice|music|sound|speech|subtitle|caption|^text|json|pdf", re.IGNORECASE)
NOT_IMAGE_PATH = re.compile(r"\.(mp3|wav|m4a|aac|ogg|oga|opus|flac|mp4|m4v|mov|webm|mkv|avi|json|txt|srt|vtt|pdf"
                            r"|html?)$", re.IGNORECASE)
