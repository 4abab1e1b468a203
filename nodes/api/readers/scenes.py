"""Scene plans: the list of scenes in a scene-planning result, each read into a numbered ``Scene``."""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ResponseFormatError
from ..models import Scene, ScenePlan
from . import vocabulary as V
from .basics import MAX_ITEMS, MAX_WRAPPERS, describe, find_list, first, is_number, scene_number, text
from .story import _block

_CLOCK = re.compile(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{1,2}(?:\.\d+)?)")
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")
_UNITS = {"ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "s": 1.0, "sec": 1.0,
          "secs": 1.0, "second": 1.0, "seconds": 1.0, "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0,
          "minutes": 60.0}


def _duration(value: Any, unit: float = 1.0) -> float | None:
    """Seconds from 5, 5.5, "5s", "5.5", "500ms", "1.5 min", "0:05", "1:02:03" (a bare number is in
    ``unit``); unreadable or negative gives None."""
    if is_number(value):
        try:
            seconds = float(value) * unit
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    found = text(value)
    if found is None or len(found) > 32:
        return None
    if clock := _CLOCK.fullmatch(found):
        return int(clock[1] or 0) * 3600 + int(clock[2]) * 60 + float(clock[3])
    amount = _AMOUNT.fullmatch(found.lower())
    if not amount or (amount[2] and amount[2] not in _UNITS):
        return None
    return float(amount[1]) * _UNITS.get(amount[2], unit)


def _dialogue(value: Any) -> str | None:
    """Narration, which may be dialogue: a list of lines or of {speaker, line} objects."""
    if (block := _block(value)) is not None or not isinstance(value, list):
        return block
    lines = []
    for item in value[:MAX_ITEMS]:
        if isinstance(item, dict) and (line := first(item, V.LINE_KEYS, text)):
            speaker = first(item, V.SPEAKER_KEYS, text)
            lines.append(f"{speaker}: {line}" if speaker else line)
    return "\n".join(lines) or None


def _scene(item: Any, position: int) -> tuple[int | None, Scene] | None:
    """(its own number or None, the scene numbered by position); a bare string is the image prompt."""
    if isinstance(item, str):
        return (None, Scene(number=position, image_prompt=item.strip())) if item.strip() else None
    if not isinstance(item, dict):
        return None
    narration = first(item, V.NARRATION_KEYS, _dialogue) or ""
    # Without an image prompt, the narration (or the title) describes the picture best; else "".
    prompt = first(item, V.PROMPT_KEYS, text) or narration or first(item, V.TITLE_KEYS, text) or ""
    duration = next((seconds for key, unit in V.DURATION_KEYS.items()
                     if (seconds := _duration(item.get(key), unit)) is not None), None)
    return (first(item, V.SCENE_NUMBER_KEYS, scene_number),
            Scene(number=position, image_prompt=prompt, narration=narration, duration=duration, raw=item))


def read_scene_plan(result: Any) -> ScenePlan:
    """A scene plan from a scene-planning result (``raw`` is the result as given): a bare list, or the list
    under scenes / plan / shots / ... inside at most three wrappers.

    Scenes are numbered by their own number, else by 1-based position; a plan counting from 0 is
    shifted by one (scenes are 1-based everywhere, like the API's sceneNumber). Sorted by number,
    stably. Items that are neither objects nor strings are skipped.
    """
    items = find_list(result, V.SCENE_LIST_KEYS, V.PLAN_KEYS + V.WRAPPER_KEYS, MAX_WRAPPERS + 1, decode=True)
    if items is None:
        raise ResponseFormatError(f"no list of scenes in the scene plan ({describe(result)})")
    read = [found for position, item in enumerate(items[:MAX_ITEMS], 1) if (found := _scene(item, position))]
    if not read:
        raise ResponseFormatError("the scene plan has no scenes")
    shift = 1 if min((n for n, _ in read if n is not None), default=1) == 0 else 0
    for number, scene in read:
        scene.number = scene.number if number is None else number + shift
    return ScenePlan(scenes=sorted((scene for _, scene in read), key=lambda scene: scene.number), raw=result)
