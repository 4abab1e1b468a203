"""Scene plans: the list of scenes in a scene-planning result, each read into a numbered ``Scene``."""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ResponseFormatError
from ..models import Scene, ScenePlan
from . import vocabulary as V
from .basics import KINDS, MAX_ITEMS, MAX_WRAPPERS, block, describe, find_list, is_number, read, text

_CLOCK = re.compile(r"(?:(\d{1,3}):)?(\d{1,3}):(\d{1,2}(?:\.\d+)?)")
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")


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
    if not amount or (amount[2] and amount[2] not in V.DURATION_UNITS):
        return None
    return float(amount[1]) * V.DURATION_UNITS.get(amount[2], unit)


def _dialogue(value: Any) -> str | None:
    """Narration, which may be dialogue: a list of lines or of {speaker, line} objects."""
    if (found := block(value)) is not None or not isinstance(value, list):
        return found
    lines = []
    for item in value[:MAX_ITEMS]:
        if isinstance(item, dict) and (said := read(V.LINE, item))["line"]:
            lines.append(f"{said['speaker']}: {said['line']}" if said["speaker"] else said["line"])
    return "\n".join(lines) or None


def _scene(item: Any, position: int) -> tuple[int | None, Scene] | None:
    """(its own number or None, the scene numbered by position); a bare string is the image prompt."""
    if isinstance(item, str):
        return (None, Scene(number=position, image_prompt=item.strip())) if item.strip() else None
    if not isinstance(item, dict):
        return None
    scene = read(V.SCENE, item)
    # Without an image prompt, the narration (or the title) describes the picture best; else "".
    prompt = scene["prompt"] or scene["narration"] or scene["title"] or ""
    duration = scene["seconds"] if scene["seconds"] is not None else scene["milliseconds"]
    return scene["number"], Scene(number=position, image_prompt=prompt, narration=scene["narration"],
                                  duration=duration, raw=item)


def read_scene_plan(result: Any) -> ScenePlan:
    """A scene plan from a scene-planning result (``raw`` is the result as given): a bare list, or the list
    under scenes / plan / shots / ... inside at most three wrappers.

    Scenes are numbered by their own number, else by 1-based position; a plan counting from 0 is
    shifted by one (scenes are 1-based everywhere, like the API's sceneNumber). Sorted by number,
    stably. Items that are neither objects nor strings are skipped.
    """
    items = find_list(result, V.SCENE_LISTS, V.PLAN_WRAPPER, MAX_WRAPPERS + 1, decode=True)
    if items is None:
        raise ResponseFormatError(f"no list of scenes in the scene plan ({describe(result)})")
    scenes = [found for position, item in enumerate(items, 1) if (found := _scene(item, position))]
    if not scenes:
        raise ResponseFormatError("the scene plan has no scenes")
    shift = 1 if min((n for n, _ in scenes if n is not None), default=1) == 0 else 0
    for number, scene in scenes:
        scene.number = scene.number if number is None else number + shift
    return ScenePlan(scenes=sorted((scene for _, scene in scenes), key=lambda scene: scene.number), raw=result)


KINDS.update(dialogue=_dialogue, seconds=_duration, milliseconds=lambda value: _duration(value, 0.001))
