"""The words the readers know: every synonym table of the pack. Everything else is found by structure.
When the API uses a word nobody foresaw, add it here; docs/openapi.yaml describes where each is looked for.
"""

from __future__ import annotations

import re

from ..models import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED

# Status words, matched ignoring case, spaces, hyphens, dots and underscores ("In-Progress" == "in_progress").
STATUS_SYNONYMS: dict[str, tuple[str, ...]] = {
    QUEUED: ("pending", "queued", "waiting", "created", "starting", "in_queue", "throttled"),
    RUNNING: ("processing", "running", "in_progress", "generating", "started"),
    SUCCEEDED: ("completed", "complete", "succeeded", "success", "done", "finished", "ready"),
    FAILED: ("failed", "error", "errored", "rejected"),
    CANCELED: ("canceled", "cancelled", "aborted", "expired"),
}

# Ids, most specific key first; then a job and its parts.
JOB_ID_KEYS = ("jobId", "job_id", "jobID", "id")
WORKSPACE_ID_KEYS = ("id", "workspaceId", "workspace_id", "_id")
SESSION_ID_KEYS = ("id", "sessionId", "session_id", "_id", "projectId", "project_id")
STATUS_KEYS = ("status", "state", "jobStatus", "job_status")
PROGRESS_KEYS = ("progress", "percent", "percentage", "progressPercent", "progress_percent")
RESULT_KEYS = ("result", "results", "output", "outputs")
ERROR_KEYS = ("error", "errors", "errorMessage", "error_message", "failureReason", "failure_reason")
MESSAGE_KEYS = ("message", "detail", "details", "error", "reason", "msg", "description", "title")
FAILURE_KEYS = ("message", "detail", "reason")  # what a failed job without an error field says instead
CODE_KEYS = ("code", "type", "status")
STATUS_OBJECT_KEYS = ("state", "status", "name", "value")  # a status given as an object
# Progress given as an object: a 0-100 number, a value read like progress itself, or done / total.
PERCENT_KEYS, FRACTION_KEYS = ("percent", "percentage"), ("progress", "value", "fraction")
DONE_KEYS, TOTAL_KEYS = ("current", "completed", "done", "step"), ("total", "steps")
# Wrappers a value may sit in, and the lists a list answer may be under.
WRAPPER_KEYS = ("result", "data", "output")
STORY_KEYS = ("story", "storyData", "story_data")
PLAN_KEYS = ("scenePlan", "scene_plan", "plan")
SCENE_LIST_KEYS = ("scenes", "plan", "shots", "scenePlan", "scene_plan", "storyboard")
LIST_KEYS = ("sessions", "projects", "workspaces", "items", "results", "data")
SESSION_WRAPPER_KEYS = ("session", "project", "data")
MEMBERSHIP_KEYS = ("workspace", "organization")  # a membership record names its workspace inside
SCENE_NUMBER_KEYS = ("sceneNumber", "scene_number", "number", "index", "scene", "sceneIndex", "scene_index")
PROMPT_KEYS = ("imagePrompt", "image_prompt", "visualPrompt", "visual_prompt", "prompt", "description", "visual",
               "imageDescription", "image_description")
# Seconds per unit of each duration key, seconds first: a scene giving both is read in seconds.
DURATION_KEYS = {"duration": 1.0, "durationSeconds": 1.0, "duration_seconds": 1.0, "seconds": 1.0,
                 "length": 1.0, "durationSec": 1.0, "duration_sec": 1.0,
                 "durationMs": 0.001, "duration_ms": 0.001, "durationMS": 0.001}
# Text: names of projects and workspaces; titles, story text in the order it is shown, beats, narration.
NAME_KEYS = ("name", "title", "projectName", "project_name", "topic", "slug")
TITLE_KEYS = ("title", "headline", "heading", "name")
STORY_TITLE_KEYS = ("title", "headline")
STORY_TEXT_KEYS = ("logline", "tagline", "premise", "hook", "synopsis", "summary", "description", "plot",
                   "script", "narration", "text", "content", "body", "fullText", "full_text", "storyText",
                   "story_text", "story")
SECTION_KEYS = ("sections", "beats", "chapters", "scenes", "acts", "parts")
NARRATION_KEYS = ("narration", "voiceover", "voiceOver", "voice_over", "text", "script", "dialogue", "dialog",
                  "content", "body", "summary")
LINE_KEYS, SPEAKER_KEYS = ("line", "text", "content", "dialogue"), ("speaker", "character", "name")  # dialogue
CREATED_KEYS = ("createdAt", "created_at", "created", "updatedAt", "updated_at")
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
TYPE_KEYS = ("type", "kind", "mimeType", "mime_type", "contentType", "content_type", "mediaType", "media_type")
NOT_IMAGE_TYPE = re.compile(r"audio|video|voice|music|sound|speech|subtitle|caption|^text|json|pdf", re.IGNORECASE)
NOT_IMAGE_PATH = re.compile(r"\.(mp3|wav|m4a|aac|ogg|oga|opus|flac|mp4|m4v|mov|webm|mkv|avi|json|txt|srt|vtt|pdf"
                            r"|html?)$", re.IGNORECASE)
