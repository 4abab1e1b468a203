"""Checks of user input made before any request, so that invalid input never spends credits.

Each check returns the cleaned value or raises ValidationError naming the field and the fix. The
nodes call the same functions from VALIDATE_INPUTS, so ComfyUI refuses a bad prompt before queueing.

Free text that creates a job (topic, prompt, video model, a pasted story) must hold something a model
can read: text made only of invisible characters (zero-width spaces, byte order marks, joiners,
controls, fillers) looks filled in on the canvas but asks for a paid job about nothing, and a lone
surrogate is not Unicode at all (the API may take the money, then fail on it). Both are refused here.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata

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
# Categories that draw nothing on their own: controls, format characters (zero-width space, BOM, word
# joiner, bidi marks), surrogates, separators and spaces, and marks with no base letter to sit on.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me", "Mc"})
# Letters and symbols that render as blank space although Unicode does not call them spaces.
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_STORY_STRINGS = 100_000  # a pasted story is walked for lone surrogates up to this many strings


def _shown(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` (Python keeps them from bad decoding or JSON escapes)."""
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            return ch
    return None


def visible_text(field: str, value: str, *, where: str = "", fix: str = "") -> str:
    """``value`` stripped, refused when it is empty, holds a lone surrogate, or draws nothing."""
    bad = lone_surrogate(value)
    if bad is not None:
        at = value.index(bad)
        raise ValidationError(
            f"The {field}{where} holds a lone surrogate ({_shown(bad)} at character {at + 1}), which is not valid "
            "Unicode and cannot be sent; retype or paste the text again.")
    text = value.strip()
    if not text:
        shown = " (only spaces or invisible characters)" if value else ""
        raise ValidationError(f"The {field}{where} is empty{shown}" + (f": {fix}" if fix else "."))
    if all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _BLANK_LOOKALIKES for ch in text):
        kinds = ", ".join(dict.fromkeys(_shown(ch) for ch in text[:200]))
        raise ValidationError(
            f"The {field}{where} holds only invisible characters ({kinds[:300]}): it would pay for a job about "
            "nothing" + (f"; {fix}" if fix else "."))
    return text


def topic(value) -> str:
    text = visible_text("topic", value if isinstance(value, str) else "",
                        fix="write what the story should be about.")
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
    text = visible_text("prompt", value, where=where)
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
    _no_lone_surrogates("story", value)
    return value


def video_model(value) -> str | None:
    """The optional video model name: absent when blank, else visible text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return visible_text("video_model", str(value), fix="clear it, or name a video model.")


def _no_lone_surrogates(field: str, value) -> None:
    """Walk a JSON value (iteratively: a pasted story may nest deeply) for strings with lone surrogates."""
    stack, seen = [value], 0
    while stack and seen < MAX_STORY_STRINGS:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and lone_surrogate(item) is not None:
            bad = lone_surrogate(item)
            raise ValidationError(f"The {field} holds a lone surrogate ({_shown(bad)}) in the text "
                                  f"{item[:40]!r}, which is not valid Unicode and cannot be sent.")
