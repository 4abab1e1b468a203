"""What every reader shares: bounds, the kinds of value a field can hold (``KINDS``), the one walker that
reads a vocabulary table out of an object (``read``), the one that strips the wrappers around a value
(``descend``), and describing a payload in an error message by its keys, never its values.

Every walk is bounded in depth, list length and total work, so a hostile payload costs little and
cannot blow the stack. ``None``, empty strings and empty containers count as absent.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from .vocabulary import Field

MAX_DEPTH = 64  # container levels a walk descends (its total work is bounded by MAX_VISITS)
MAX_WRAPPERS = 3  # envelopes stripped: {data: {job: {...}}} needs two
MAX_ITEMS = 10_000  # elements of one list examined
MAX_VISITS = 100_000  # values one walk looks at
MAX_MESSAGE = 2_000  # characters kept of a server's error message
MAX_JSON_TEXT = 20_000_000  # JSON inside a string is decoded only below this size
# Ids go into URL paths (/api/jobs/:id): nothing that could change the path or the query.
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._:~+=@-]{0,199}")


def is_number(value: Any) -> bool:
    """True for JSON numbers; booleans are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text(value: Any) -> str | None:
    """A non-empty stripped string, or None."""
    return (value.strip() or None) if isinstance(value, str) else None


def block(value: Any) -> str | None:
    """A string, or a list of strings joined by newlines (a script given line by line)."""
    if isinstance(value, list):
        return "\n".join(line for line in map(text, value[:MAX_ITEMS]) if line) or None
    return text(value)


def absent(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def ident(value: Any) -> str | None:
    """An id as a string (ints too: some back ends number their jobs), or None."""
    if is_number(value):
        return str(value) if isinstance(value, int) and abs(value) < 10**30 else None
    found = text(value)
    return found if found is not None and _ID.fullmatch(found) else None


def scene_number(value: Any) -> int | None:
    """A scene number from 3, 3.0, "3" or "Scene 3"; negative, fractional or absurd values give None."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if is_number(value):
        return value if isinstance(value, int) and 0 <= value < 1_000_000 else None
    match = re.search(r"\d{1,6}", value[:64]) if isinstance(value, str) else None
    return int(match.group()) if match else None


def maybe_json(value: Any) -> dict | list | None:
    """A string holding a JSON object or list, decoded; anything else gives None."""
    if not isinstance(value, str) or len(value) > MAX_JSON_TEXT or value.lstrip()[:1] not in ("[", "{"):
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the interpreter allows
        return None
    return decoded if isinstance(decoded, (dict, list)) else None


# How a field's value is read, by the kind names of the vocabulary's tables: each gives None for a value
# it cannot read, and the walker goes on to the field's next key. The reader modules add their own kinds.
KINDS: dict[str, Callable[[Any], Any]] = {
    "any": lambda value: value,
    "present": lambda value: None if absent(value) else value,
    "text": text,
    "block": block,
    "number": lambda value: value if is_number(value) else None,
    "ident": ident,
    "scene_number": scene_number,
    "list": lambda value: value if isinstance(value, list) else None,
    "object": lambda value: value if isinstance(value, dict) else None,
    "object_or_json": lambda value: value if isinstance(value, dict) else maybe_json(value),
}


def get(field: Field, mapping: dict, convert: Callable[[Any], Any] | None = None) -> Any:
    """One field of ``mapping``: the first of its keys whose value reads as its kind, else its default."""
    convert = convert or KINDS[field.kind]
    for key in field.keys:
        value = mapping.get(key)
        if value is not None and (found := convert(value)) is not None:
            return found
    return field.default


def read(table: dict[str, Field], mapping: dict, **convert: Callable[[Any], Any]) -> dict[str, Any]:
    """Every field of a vocabulary table out of ``mapping``; ``convert`` reads a field other than its kind
    says (an error's message one level deeper, say)."""
    return {name: get(field, mapping, convert.get(name)) for name, field in table.items()}


def has_any(mapping: dict, keys: Iterable[str], skip: str | None = None) -> bool:
    return any(key != skip and not absent(mapping.get(key)) for key in keys)


def descend(value: Any, inner: Callable[[dict], Any], levels: int, found: Callable[[dict], Any],
            decode: bool = False) -> Any:
    """``value`` with up to ``levels`` wrapping objects stripped: it stops at what is not an object, at an
    object ``found`` accepts and at one without ``inner(object)``. With ``decode``, JSON text is decoded."""
    for _ in range(levels):
        if decode and (decoded := maybe_json(value)) is not None:
            value = decoded
        if not isinstance(value, dict) or found(value) or (wrapped := inner(value)) is None:
            return value
        value = wrapped
    return value


def find_list(value: Any, lists: Field, wrapper: Field, levels: int, decode: bool = False) -> list | None:
    """A bare list, or the first list under ``lists``, looked for through ``levels - 1`` wrapping objects
    (with ``decode``, JSON text too); its first MAX_ITEMS items."""
    value = descend(value, lambda obj: get(wrapper, obj), levels - 1,
                    lambda obj: get(lists, obj) is not None, decode)
    if decode and (decoded := maybe_json(value)) is not None:
        value = decoded
    found = value if isinstance(value, list) else get(lists, value) if isinstance(value, dict) else None
    return None if found is None else found[:MAX_ITEMS]


def clip(message: str, limit: int = MAX_MESSAGE) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _keys(mapping: dict, limit: int, nested: bool) -> str:
    shown = []
    for key, inner in itertools.islice(mapping.items(), limit):
        name = key[:40] if isinstance(key, str) else type(key).__name__
        if nested and isinstance(inner, list) and inner and isinstance(inner[0], dict):
            name += f" [{len(inner)} x {{{_keys(inner[0], 8, False)}}}]"
        elif nested and isinstance(inner, dict) and inner:
            name += f" {{{_keys(inner, 8, False)}}}"
        shown.append(name)
    return ", ".join(shown + ["..."] * (len(mapping) > limit))


def describe(value: Any) -> str:
    """A payload as an error message shows it: its keys, and the keys one level down, never its values."""
    if isinstance(value, dict):
        return "keys seen: " + _keys(value, 30, True) if value else "an empty object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, str):
        return f"a string of {len(value)} character(s)"
    kinds = {type(None): "null", bool: "boolean", int: "number", float: "number"}
    return f"a {kinds.get(type(value), type(value).__name__)}"
