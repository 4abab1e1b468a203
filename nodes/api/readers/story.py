"""Stories: the story object inside a job result, and readable text derived from whatever it holds.
The story stays opaque: ``Story.raw`` is exactly what goes back to scene-planning."""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import ResponseFormatError
from ..models import Story
from . import vocabulary as V
from .basics import KINDS, MAX_ITEMS, MAX_WRAPPERS, block, descend, describe, get, has_any, read, text

# Keys that make an object the story itself rather than a wrapper around it ("story" may be either).
_OWN = (*(key for field in V.STORY.values() for key in field.keys), V.PARAGRAPHS,
        *(key for key in V.STORY_TEXT_KEYS if key != "story"))


def _wrapped(obj: dict) -> Any:
    """The first value under story / storyData / result / data / output, if it may hold the story."""
    inner = get(V.STORY_WRAPPER, obj)
    return inner if isinstance(inner, (dict, list, str)) else None


def _beats(items: Any) -> list[str] | None:
    """Beats as "1. Heading\\nnarration", numbered in order."""
    if not isinstance(items, list):
        return None
    blocks: list[str] = []
    for item in items[:MAX_ITEMS]:
        heading, body = None, text(item)
        if isinstance(item, dict):
            beat = read(V.BEAT, item)
            heading, body = beat["heading"], beat["body"]
        if heading or body:
            number = len(blocks) + 1
            blocks.append(f"{number}. {heading}\n{body}" if heading and body else f"{number}. {heading or body}")
    return blocks or None


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
            if isinstance(key, str) and not V.NOT_STORY_TEXT.search(key):
                _leaves(item, depth + 1, out)


def _story_text(story: dict | list) -> tuple[str, str]:
    """(text, title): the title, then the story's text fields, paragraphs and one list of beats."""
    if isinstance(story, list):
        return "\n\n".join(_beats(story) or ()), ""
    found = read(V.STORY, story)
    blocks = [found["title"]] if found["title"] else []
    paragraphs = story.get(V.PARAGRAPHS)
    for part in [*(block(story.get(key)) for key in V.STORY_TEXT_KEYS),
                 *(map(text, paragraphs[:MAX_ITEMS]) if isinstance(paragraphs, list) else ())]:
        if part and part not in blocks:
            blocks.append(part)
    if found["beats"]:  # one list of beats only: a story may repeat them as scenes
        blocks.append("\n\n".join(found["beats"]))
    if len(blocks) <= bool(found["title"]):  # nothing familiar beyond a title: every readable string in it
        leaves: list[str] = []
        _leaves({k: v for k, v in story.items() if k not in V.STORY["title"].keys}, 0, leaves)
        blocks += [leaf for leaf in leaves if leaf not in blocks]
    return "\n\n".join(blocks), found["title"]


def read_story(result: Any) -> Story:
    """A story from a story job's result (or a project's story field); a bare string is its own text.

    JSON text is decoded; an object with story content of its own is the story; otherwise the first value
    under story / storyData / result / data / output is looked into, a few levels down.
    """
    story = descend(result, _wrapped, MAX_WRAPPERS + 1, lambda obj: has_any(obj, _OWN), decode=True)
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


KINDS["beats"] = _beats
