"""Checks of user input made before any request, so that invalid input never spends credits.

Each check returns the cleaned value or raises ValidationError naming the field and the fix; the nodes
call them from VALIDATE_INPUTS too, so ComfyUI refuses a bad prompt before queueing. Job-creating text
that is only invisible characters (zero-width spaces, BOMs, joiners, controls, fillers) looks filled
in but asks for a paid job about nothing, and a lone surrogate is not Unicode at all (the API may take
the money, then fail on it): both are refused.
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
MAX_TEXT_CHARS = 4000  # of a topic or a prompt
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
# Ids go into URL paths (/api/jobs/:id, /api/session/:id): the characters readers.read_job_id accepts,
# and nothing that could change the path or add a query ("/", "..", "?", "#", "%").
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:~+=@-]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Categories that draw nothing on their own: controls, format characters (zero-width space, BOM, word
# joiner, bidi marks), surrogates, separators and spaces, and marks with no base letter to sit on;
# then letters and symbols that render as blank space although Unicode does not call them spaces.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me", "Mc"})
_BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_STORY_STRINGS = 100_000  # a pasted story is walked for lone surrogates up to this many strings


def _shown(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def visible_text(field: str, value: str, *, where: str = "", fix: str = "", limit: int | None = None) -> str:
    """``value`` stripped, refused when it is empty, too long, holds a lone surrogate, or draws nothing."""
    if bad := _SURROGATE.search(value):
        raise ValidationError(
            f"The {field}{where} holds a lone surrogate ({_shown(bad[0])} at character {bad.start() + 1}), which is "
            "not valid Unicode and cannot be sent; retype or paste the text again.")
    text = value.strip()
    if not text:
        shown = " (only spaces or invisible characters)" if value else ""
        raise ValidationError(f"The {field}{where} is empty{shown}" + (f": {fix}" if fix else "."))
    if all(unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _BLANK_LOOKALIKES for ch in text):
        kinds = ", ".join(dict.fromkeys(_shown(ch) for ch in text[:200]))
        raise ValidationError(
            f"The {field}{where} holds only invisible characters ({kinds[:300]}): it would pay for a job about "
            "nothing" + (f"; {fix}" if fix else "."))
    if limit is not None and len(text) > limit:
        raise ValidationError(f"The {field}{where} has {len(text)} characters; the limit is {limit}.")
    return text


def topic(value) -> str:
    return visible_text("topic", value if isinstance(value, str) else "", limit=MAX_TEXT_CHARS,
                        fix="write what the story should be about.")


def prompt(value, *, index: int | None = None) -> str:
    where = f" (item {index + 1} of the list)" if index is not None else ""
    if not isinstance(value, str):
        raise ValidationError(f"The prompt{where} must be text, not {type(value).__name__}.")
    return visible_text("prompt", value, where=where, limit=MAX_TEXT_CHARS)


def video_model(value) -> str | None:
    """The optional video model name: absent when blank, else visible text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return visible_text("video_model", str(value), fix="clear it, or name a video model.")


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
    if not _SLUG.match(text):
        raise ValidationError(f"model must be a model slug such as flux-schnell or flux-dev, not {value!r}.")
    return text


def optional_id(field: str, value) -> str | None:
    text = "" if value is None else str(value).strip()
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
        if not (text := value.strip()):
            raise ValidationError("The story is empty: connect a 3DLabs Story node or paste story JSON.")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"The story text is not valid JSON ({exc.msg} at line {exc.lineno}, "
                                  f"column {exc.colno}).") from None
    if not isinstance(value, (dict, list)) or not value:
        raise ValidationError("The story must be a JSON object as returned by the 3DLabs Story node.")
    stack = [value]  # walked iteratively: a pasted story may nest deeply
    for _ in range(MAX_STORY_STRINGS):
        if not stack:
            break
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (bad := _SURROGATE.search(item)):
            raise ValidationError(f"The story holds a lone surrogate ({_shown(bad[0])}) in the text "
                                  f"{item[:40]!r}, which is not valid Unicode and cannot be sent.")
    return value
