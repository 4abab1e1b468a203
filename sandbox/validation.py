"""Checks of the published POST bodies: exact field names, one message per problem naming the field.

Each check returns the normalised parameters a job is made from, or raises ``Invalid``. Fields the
API does not publish are ignored, as a lenient server would.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .images import ASPECT_SIZES

STORY_PROVIDERS = ("gemini", "claude")
IMAGE_PROVIDERS = ("replicate", "gemini")
ASPECT_RATIOS = tuple(ASPECT_SIZES)
MIN_MINUTES, MAX_MINUTES = 1, 5
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")


class Invalid(ValueError):
    """A request body the API would answer with 400; the message names the field."""


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object")
    return body


def _text(body: dict, name: str, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{name} must be a non-empty string")
    return value


def _choice(body: dict, name: str, options: tuple[str, ...], default: str | None) -> str:
    value = body.get(name)
    if value is None and default is not None:
        return default
    if value is None:
        raise Invalid(f"{name} is required (one of {', '.join(options)})")
    if value not in options:
        raise Invalid(f"{name} must be one of {', '.join(options)}")
    return value


def _minutes(body: dict) -> float:
    value = body.get("maxMinutes")
    if value is None:
        raise Invalid("maxMinutes is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid("maxMinutes must be a number")
    if not MIN_MINUTES <= value <= MAX_MINUTES:
        raise Invalid(f"maxMinutes must be between {MIN_MINUTES} and {MAX_MINUTES}")
    return value


def story_request(body: Any) -> dict:
    body = _object(body)
    return {
        "topic": _text(body, "topic", required=True),
        "maxMinutes": _minutes(body),
        "projectId": _text(body, "projectId", required=False),
        "provider": _choice(body, "provider", STORY_PROVIDERS, default="gemini"),
    }


def plan_request(body: Any) -> dict:
    body = _object(body)
    story = body.get("story")
    if story is None:
        raise Invalid("story is required")
    if not isinstance(story, dict):
        raise Invalid("story must be an object (the story as returned by the stories job)")
    return {
        "story": story,
        "maxMinutes": _minutes(body),
        "videoModel": _text(body, "videoModel", required=False),
        # Not published for scene-planning; honoured when present so the demo can file plans.
        "projectId": _text(body, "projectId", required=False),
    }


def image_request(body: Any) -> dict:
    body = _object(body)
    params = {
        "prompt": _text(body, "prompt", required=True),
        "provider": _choice(body, "provider", IMAGE_PROVIDERS, default=None),
        "model": _text(body, "model", required=True),
        "aspectRatio": _choice(body, "aspectRatio", ASPECT_RATIOS, default=None),
        "projectId": _text(body, "projectId", required=False),
        "sceneNumber": None,
    }
    if not _SLUG.fullmatch(params["model"]):
        raise Invalid("model must be a model slug such as flux-dev")
    number = body.get("sceneNumber")
    if number is not None:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise Invalid("sceneNumber must be an integer of at least 1")
        params["sceneNumber"] = number
    return params
