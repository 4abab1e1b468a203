"""Workspaces and projects (the API's "sessions"): the list answers, and one whole project with its
story, its scene plan and every image found anywhere in it."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from ..errors import ResponseFormatError
from ..models import Project, Workspace
from . import vocabulary as V
from .basics import MAX_ITEMS, MAX_WRAPPERS, clip, describe, find_list, first, ident, is_number, numeric, text
from .images import find_images
from .jobs import render_error
from .scenes import read_scene_plan
from .story import read_story


def read_workspaces(payload: Any) -> list[Workspace]:
    """Workspaces from ``GET /api/workspaces``: a list (or one workspace) of objects with an id, membership
    records holding such an object under workspace / organization, or bare ids. An empty list is fine;
    a non-empty one with nothing readable is an error."""
    items = find_list(payload, V.LIST_KEYS, V.WRAPPER_KEYS, 2)
    if items is None and isinstance(payload, dict) and first(payload, V.WORKSPACE_ID_KEYS, ident):
        items = [payload]
    if items is None:
        raise ResponseFormatError(f"no list of workspaces in the answer ({describe(payload)})")
    workspaces = []
    for item in items[:MAX_ITEMS]:
        if isinstance(item, dict) and first(item, V.WORKSPACE_ID_KEYS, ident) is None:
            item = first(item, V.MEMBERSHIP_KEYS, lambda v: v if isinstance(v, dict) else None) or item
        found = first(item, V.WORKSPACE_ID_KEYS, ident) if isinstance(item, dict) else ident(item)
        if found is not None:
            raw = item if isinstance(item, dict) else {}
            workspaces.append(Workspace(id=found, name=first(raw, V.NAME_KEYS, text) or "", raw=raw))
    if items and not workspaces:
        raise ResponseFormatError(f"no workspace in the answer has an id ({describe(items[0])})")
    return workspaces


def _timestamp(value: Any) -> str | None:
    """An ISO string as given, or epoch seconds (milliseconds above 1e11) as UTC ISO."""
    if isinstance(value, dict):  # Firestore-style {"_seconds": ..., "_nanoseconds": ...}
        value = first(value, ("_seconds", "seconds"), numeric)
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


def _project(item: dict, **parts: Any) -> Project:
    return Project(id=first(item, V.SESSION_ID_KEYS, ident) or "", name=first(item, V.NAME_KEYS, text) or "",
                   created=first(item, V.CREATED_KEYS, _timestamp) or "", raw=item, **parts)


def read_sessions(payload: Any) -> list[Project]:
    """Project headers (id, name, created) from ``GET /api/session/list``; items without an id are skipped."""
    items = find_list(payload, V.LIST_KEYS, V.WRAPPER_KEYS, 2)
    if items is None:
        raise ResponseFormatError(f"no list of sessions in the answer ({describe(payload)})")
    projects = [project for item in items[:MAX_ITEMS] if isinstance(item, dict) and (project := _project(item)).id]
    if items and not projects:
        raise ResponseFormatError(f"no session in the answer has an id ({describe(items[0])})")
    return projects


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
    body = payload
    for _ in range(MAX_WRAPPERS):
        inner = first(body, V.SESSION_WRAPPER_KEYS, lambda v: v if isinstance(v, dict) else None)
        if first(body, V.SESSION_ID_KEYS, ident) is not None or inner is None:
            break
        body = inner
    story = _readable(body, V.STORY_KEYS + ("script",), read_story)
    plan = _readable(body, V.PLAN_KEYS + V.SCENE_LIST_KEYS, read_scene_plan)
    project = _project(body, story=story, scene_plan=plan, images=find_images(body))
    if not (project.id or story or plan or project.images):
        said = render_error(first(body, V.ERROR_KEYS))
        raise ResponseFormatError(f"the answer carries an error instead of a session: {said}" if said else
                                  f"no project id, story, scene plan or image in the answer ({describe(body)})")
    project.id = project.id or (ident(session_id) if session_id is not None else None) or ""
    project.name = project.name or (story.title if story else "")
    return project
