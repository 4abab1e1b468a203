"""Project (session) views: a stored base project plus every finished job that names it by projectId.

Views are assembled on each read, so a job's story, plan or image shows up in its project the moment
the job counts as completed, and clearing the jobs returns the seeded projects to their seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .jobs import JobRecord, Phase

UNTITLED = "Untitled project"


@dataclass(frozen=True)
class Entry:
    """One job of a project as seen now: its phase and, once completed, its canonical result."""

    job: JobRecord
    phase: Phase
    result: Any = None


def assemble(base: dict | None, workspace_id: str, project_id: str, entries: list[Entry],
             image_url: Callable[[str], str], iso: Callable[[float], str]) -> dict | None:
    """The full project, or None when neither a stored project nor any job carries this id."""
    if base is None and not entries:
        return None
    if base is None:  # a projectId the sandbox had not seen: the project appears with its first job
        first = entries[0].job
        base = {
            "id": project_id, "name": UNTITLED, "createdAt": iso(first.created_at),
            "updatedAt": iso(first.created_at), "workspaceId": workspace_id, "topic": None,
            "story": None, "scenePlan": None, "scenes": [],
        }
        story_jobs = [e.job for e in entries if e.job.kind == "story"]
        if story_jobs:
            base["name"] = story_jobs[0].params["topic"]
            base["topic"] = story_jobs[0].params["topic"]
    project = copy.deepcopy(base)
    images: dict[int, dict] = {}
    for scene in project.pop("scenes", []):
        url = image_url(scene["image"]) if scene.get("image") else scene.get("imageUrl")
        images[scene["sceneNumber"]] = {"sceneNumber": scene["sceneNumber"], "imageUrl": url,
                                        "imagePrompt": scene.get("imagePrompt", "")}

    finished = [e for e in entries if e.phase.status == "completed"]
    for entry in sorted(finished, key=lambda e: (e.phase.finished_at, e.job.created_at)):
        job = entry.job
        if job.kind == "story":
            project["story"] = entry.result
            project["topic"] = job.params["topic"]
            if project["name"] in (UNTITLED, job.params["topic"]):
                project["name"] = entry.result.get("title") or project["name"]
        elif job.kind == "scene-planning":
            project["scenePlan"] = entry.result
        else:
            number = job.params.get("sceneNumber") or max(images, default=0) + 1
            images[number] = {"sceneNumber": number, "imageUrl": entry.result["imageUrl"],
                              "imagePrompt": job.params["prompt"]}
        project["updatedAt"] = max(project["updatedAt"], iso(entry.phase.finished_at))

    scenes = dict(images)
    plan = copy.deepcopy(project.get("scenePlan"))  # job results are cached: never edit them in place
    for planned in (plan or {}).get("scenes", []):
        number = planned.get("sceneNumber")
        if not isinstance(number, int):
            continue
        if number in scenes:
            # The plan's scenes carry their images too, so a reader of either list finds them.
            planned["imageUrl"] = scenes[number]["imageUrl"]
        else:  # planned scenes without an image yet still show, with a null URL
            scenes[number] = {"sceneNumber": number, "imageUrl": None,
                              "imagePrompt": planned.get("imagePrompt")}
    if plan is not None:
        project["scenePlan"] = plan
    project["scenes"] = [scenes[number] for number in sorted(scenes)]
    return project


def summary(project: dict) -> dict:
    keys = ("id", "name", "createdAt", "updatedAt", "workspaceId")
    return {**{key: project[key] for key in keys}, "sceneCount": len(project["scenes"])}
