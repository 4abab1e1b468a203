"""Workspaces and projects (the API's "sessions"): the list answers, and one whole project with its
story, its scene plan and every image found anywhere in it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..errors import ResponseFormatError
from ..models import Project, Workspace
from . import vocabulary as V
from .basics import KINDS, MAX_WRAPPERS, clip, descend, describe, find_list, get, ident, is_number, read, text
from .images import find_images
from .jobs import render_error
from .scenes import read_scene_plan
from .story import read_story
from .vocabulary import Field


def _items(payload: Any, what: str, build: Callable[[Any], Any], alone: Field | None = None) -> list:
    """What ``build`` makes of each item of a list answer (bare, or under sessions / workspaces / items /
    ... in one wrapper; or one object with an ``alone`` of its own), skipping items without an id. An empty
    list is fine; a non-empty one with nothing readable is an error."""
    items = find_list(payload, V.LISTS, V.LIST_WRAPPER, 2)
    if items is None and alone and isinstance(payload, dict) and get(alone, payload):
        items = [payload]
    if items is None:
        raise ResponseFormatError(f"no list of {what}s in the answer ({describe(payload)})")
    values = [value for value in map(build, items) if value is not None and value.id]
    if items and not values:
        raise ResponseFormatError(f"no {what} in the answer has an id ({describe(items[0])})")
    return values


def _workspace(item: Any) -> Workspace:
    """A workspace, a membership record holding one under workspace / organization, or a bare id."""
    if not isinstance(item, dict):
        return Workspace(id=ident(item) or "", raw={})
    item = descend(item, lambda obj: get(V.MEMBERSHIP, obj), 1, lambda obj: get(V.WORKSPACE["id"], obj))
    return Workspace(**read(V.WORKSPACE, item), raw=item)


def read_workspaces(payload: Any) -> list[Workspace]:
    """Workspaces from ``GET /api/workspaces``: a list of them, or one workspace."""
    return _items(payload, "workspace", _workspace, alone=V.WORKSPACE["id"])


def read_sessions(payload: Any) -> list[Project]:
    """Project headers (id, name, created) from ``GET /api/session/list``."""
    return _items(payload, "session", lambda item: Project(**read(V.PROJECT, item), raw=item)
                  if isinstance(item, dict) else None)


def _timestamp(value: Any) -> str | None:
    """An ISO string as given, or epoch seconds (milliseconds above 1e11) as UTC ISO."""
    if isinstance(value, dict):
        value = get(V.EPOCH, value)
    if (found := text(value)) is not None:
        if not re.fullmatch(r"\d{9,13}(?:\.\d+)?", found):
            return clip(found, 64)
        value = float(found)
    try:
        seconds = float(value) if is_number(value) else math.nan
        if not math.isfinite(seconds) or seconds < 0:
            return None
        moment = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _readable(body: dict, keys: tuple[str, ...], reader) -> Any:
    """What ``reader`` makes of the first of ``keys`` it can read, or None."""
    for key in keys:
        if body.get(key):
            try:
                return reader(body[key])
            except ResponseFormatError:
                continue
    return None


def read_session(payload: Any, session_id: str | None = None) -> Project:
    """A whole project from ``GET /api/session/:id``, bare or under session / project / data.

    The story and the scene plan are None when missing or unreadable; images are found anywhere in the
    project, in scene order. ``session_id`` (the id asked for) stands in when the answer carries none;
    the name falls back to the story's title. An answer with none of id, story, plan or image raises,
    quoting the server's error if it carries one, else naming the keys it saw.
    """
    if not isinstance(payload, dict):
        raise ResponseFormatError(f"expected a session object, got {describe(payload)}")
    body = descend(payload, lambda obj: get(V.SESSION_WRAPPER, obj), MAX_WRAPPERS,
                   lambda obj: get(V.PROJECT["id"], obj))
    story = _readable(body, V.SESSION_STORY_KEYS, read_story)
    plan = _readable(body, V.PLAN_KEYS + V.SCENE_LIST_KEYS, read_scene_plan)
    project = Project(**read(V.PROJECT, body), story=story, scene_plan=plan, images=find_images(body), raw=body)
    if not (project.id or story or plan or project.images):
        said = render_error(get(V.JOB["error"], body))
        raise ResponseFormatError(f"the answer carries an error instead of a session: {said}" if said else
                                  f"no project id, story, scene plan or image in the answer ({describe(body)})")
    project.id = project.id or ident(session_id) or ""
    project.name = project.name or (story.title if story else "")
    return project


KINDS["timestamp"] = _timestamp
