"""Checks of user input made before any request, so that invalid input never spends credits.

Each check returns the cleaned value or raises ValidationError naming the field and the fix. The
nodes call the same functions from VALIDATE_INPUTS, so ComfyUI refuses a bad prompt before queueing.
"""

from __future__ import annotations

import json
import math
import re

from .errors import ValidationError

STORY_PROVIDERS = ("gemini", "claude")
IMAGE_PROVIDERS = ("replicate", "gemini")
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3")
IMAGE_MODELS = ("flux-schnell", "flux-dev")
MAX_TOPIC_CHARS = 4000
MAX_PROMPT_CHARS = 4000
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
# Ids go into URL paths (/api/jobs/:id, /api/session/:id): the characters readers.read_job_id accepts,
# and nothing that could change the path or add a query ("/", "..", "?", "#", "%").
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:~+=@-]*")


def topic(value) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValidationError("The topic is empty: write what the story should be about.")
    if len(text) > MAX_TOPIC_CHARS:
        raise ValidationError(f"The topic has {len(text)} characters; the limit is {MAX_TOPIC_CHARS}.")
    return text


def max_minutes(value) -> int | float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"max_minutes must be a number from 1 to 5, not {value!r}.") from None
    if math.isnan(number) or not 1 <= number <= 5:
        raise ValidationError(f"max_minutes must be from 1 to 5, not {value!r}.")
    return int(number) if number.is_integer() else number


def choice(field: str, value, allowed: tuple[str, ...]) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in allowed:
        raise ValidationError(f"{field} must be one of {', '.join(allowed)}, not {value!r}.")
    return text


def model_slug(value) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or not _SLUG.match(text):
        raise ValidationError(
            f"model must be a model slug such as {' or '.join(IMAGE_MODELS)}, not {value!r}.")
    return text


def prompt(value, *, index: int | None = None) -> str:
    where = f" (item {index + 1} of the list)" if index is not None else ""
    if not isinstance(value, str):
        raise ValidationError(f"The prompt{where} must be text, not {type(value).__name__}.")
    text = value.strip()
    if not text:
        raise ValidationError(f"The prompt{where} is empty.")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValidationError(f"The prompt{where} has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}.")
    return text


def optional_id(field: str, value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > 200 or any(c.isspace() for c in text):
        raise ValidationError(f"{field} {text[:40]!r} is not an id (no spaces, at most 200 characters).")
    if not _ID.fullmatch(text):
        raise ValidationError(f"{field} {text[:40]!r} is not an id (letters, digits and ._:~+=@- only).")
    return text


def scene_number(value) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"scene_number must be a whole number, not {value!r}.") from None
    if number < 1:
        raise ValidationError(f"scene_number must be 1 or more (0 numbers a list 1..N), not {number}.")
    return number


def story_object(value):
    """A story as an object, from the typed value or from JSON text pasted by the user."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationError("The story is empty: connect a 3DLabs Story node or paste story JSON.")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"The story text is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                  f"column {exc.colno}).") from None
    if not isinstance(value, (dict, list)) or not value:
        raise ValidationError("The story must be a JSON object as returned by the 3DLabs Story node.")
    return value
