"""Stories: the story object inside a job result, and readable text derived from whatever it holds.
The story stays opaque: ``Story.raw`` is exactly what goes back to scene-planning."""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..errors import ResponseFormatError
from ..models import Story
from . import vocabulary as V
from .basics import MAX_ITEMS, MAX_WRAPPERS, describe, first, has_any, maybe_json, text

# Keys that make an object the story itself rather than a wrapper around it ("story" may be either).
_OWN = V.STORY_TITLE_KEYS + V.SECTION_KEYS + ("paragraphs",) + tuple(k for k in V.STORY_TEXT_KEYS if k != "story")
# Case-sensitive on purpose: "createdAt" is a timestamp, "beat" and "format" are not.
_NOT_TEXT = re.compile(r"^_?id$|Id$|ID$|_id$|^url$|Url$|URL$|_url$|^uri$|^href$|At$|_at$|^created|^updated|"
                       r"^model$|^provider$|^status$|^type$|^version$|^lang(uage)?$")


def _find_story(result: Any) -> Any:
    """JSON text is decoded; an object with story content of its own is the story; otherwise the first
    value under story / storyData / result / data / output is looked into, a few levels down."""
    current = result
    for _ in range(MAX_WRAPPERS + 1):
        decoded = maybe_json(current)
        current = current if decoded is None else decoded
        if not isinstance(current, dict) or has_any(current, _OWN):
            return current
        inner = first(current, V.STORY_KEYS + V.WRAPPER_KEYS)
        if not isinstance(inner, (dict, list, str)):
            return current
        current = inner
    return current


def _block(value: Any) -> str | None:
    """A string, or a list of strings joined by newlines (a script given line by line)."""
    if isinstance(value, list):
        return "\n".join(line for line in map(text, value[:MAX_ITEMS]) if line) or None
    return text(value)


def _sections(items: list) -> list[str]:
    """Beats as "1. Heading\\nnarration", numbered in order."""
    blocks: list[str] = []
    for item in items[:MAX_ITEMS]:
        heading, body = None, text(item)
        if isinstance(item, dict):
            heading = first(item, V.TITLE_KEYS, text)
            body = first(item, V.NARRATION_KEYS + ("paragraphs",), _block)
        if heading or body:
            number = len(blocks) + 1
            blocks.append(f"{number}. {heading}\n{body}" if heading and body else f"{number}. {heading or body}")
    return blocks


def _leaves(value: Any, depth: int, out: list[str]) -> None:
    """Readable strings anywhere in an unfamiliar story, skipping ids, URLs and timestamps."""
    if len(out) >= 200 or depth > 4:
        return
    if isinstance(value, str) and (found := value.strip()) and found not in out:
        out.append(found)
    elif isinstance(value, list):
        for item in value[:200]:
            _leaves(item, depth + 1, out)
    elif isinstance(value, dict):
        for key, item in itertools.islice(value.items(), 200):
            if isinstance(key, str) and not _NOT_TEXT.search(key):
                _leaves(item, depth + 1, out)


def _story_text(story: dict | list) -> tuple[str, str]:
    """(text, title): the title, then the story's text fields, paragraphs and one list of beats."""
    if isinstance(story, list):
        return "\n\n".join(_sections(story)), ""
    title = first(story, V.STORY_TITLE_KEYS, text) or ""
    blocks = [title] if title else []
    paragraphs = story.get("paragraphs")
    for block in [*(_block(story.get(key)) for key in V.STORY_TEXT_KEYS),
                  *(map(text, paragraphs[:MAX_ITEMS]) if isinstance(paragraphs, list) else ())]:
        if block and block not in blocks:
            blocks.append(block)
    beats = first(story, V.SECTION_KEYS, lambda v: _sections(v) or None if isinstance(v, list) else None)
    if beats:  # one list of beats only: a story may repeat them as scenes
        blocks.append("\n\n".join(beats))
    if len(blocks) <= bool(title):  # nothing familiar beyond a title: every readable string in it
        leaves: list[str] = []
        _leaves({k: v for k, v in story.items() if k not in V.STORY_TITLE_KEYS}, 0, leaves)
        blocks += [leaf for leaf in leaves if leaf not in blocks]
    return "\n\n".join(blocks), title


def read_story(result: Any) -> Story:
    """A story from a story job's result (or a project's story field); a bare string is its own text."""
    story = _find_story(result)
    if isinstance(story, str):
        if not story.strip():
            raise ResponseFormatError("the story is an empty string")
        return Story(raw=story, text=story.strip())
    if not isinstance(story, (dict, list)) or not story:
        raise ResponseFormatError(f"no story object in the result ({describe(story)})")
    story_text, title = _story_text(story)
    if not story_text:  # opaque or not, a story has words
        raise ResponseFormatError(f"the story has no readable text ({describe(story)})")
    return Story(raw=story, text=story_text, title=title)
