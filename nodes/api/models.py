"""Plain values the client hands back: jobs, stories, scene plans, image references, projects.

Each keeps the raw payload it was read from: the API's shapes are undocumented, and a later reader
(or a user looking at result_json) may need fields we ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The five job states every status word is mapped to (the readers' vocabulary lists the synonyms).
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
STATES: tuple[str, ...] = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
TERMINAL: frozenset[str] = frozenset({SUCCEEDED, FAILED, CANCELED})


@dataclass
class Job:
    """One asynchronous 3DLabs job as last seen."""

    id: str
    status: Status = QUEUED
    progress: float | None = None  # 0..1, or None when the API gives none
    result: Any = None
    error: str | None = None
    raw: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Story:
    """A story as the API returned it: ``raw`` goes back to scene-planning unchanged."""

    raw: Any
    text: str
    title: str = ""
    job_id: str = ""  # set by the node that produced it, for display and provenance


@dataclass
class Scene:
    number: int
    image_prompt: str
    narration: str = ""
    duration: float | None = None  # seconds
    raw: dict = field(default_factory=dict)


@dataclass
class ScenePlan:
    scenes: list[Scene]
    raw: Any = None
    job_id: str = ""
    # The scene number of each image of the batch that came with this plan (Load Project sets it), so a
    # project with images for only some scenes can still be storyboarded; None: one image per scene.
    image_scenes: list[int] | None = None

    @property
    def total_duration(self) -> float | None:
        durations = [s.duration for s in self.scenes]
        if not durations or any(d is None for d in durations):
            return None
        return float(sum(durations))  # type: ignore[arg-type]

    def text(self) -> str:
        """The plan as the nodes show it: the scene count and length, then each scene's prompt and narration."""
        total = self.total_duration
        lines = [f"{len(self.scenes)} scenes" + (f", {total:g} s in all" if total is not None else "")]
        for scene in self.scenes:
            duration = f" ({scene.duration:g} s)" if scene.duration is not None else ""
            lines.append(f"\nScene {scene.number}{duration}: {scene.image_prompt}")
            if scene.narration:
                lines.append(f"  Narration: {scene.narration}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImageRef:
    """Where a result image is: an http(s) URL, a ``data:`` URL, or raw base64; and the scene number found
    beside it, if any."""

    kind: Literal["url", "data", "base64"]
    value: str
    # Not part of equality or hash: the same picture is one image wherever it is found.
    scene: int | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # base64 payloads are megabytes: keep reprs short
        shown = self.value if len(self.value) <= 80 else self.value[:77] + "..."
        return f"ImageRef({self.kind!r}, {shown!r}{'' if self.scene is None else f', scene={self.scene}'})"


@dataclass
class Workspace:
    id: str
    name: str = ""
    raw: dict = field(default_factory=dict)


@dataclass
class Project:
    """A 3DLabs session (the API's word for a project)."""

    id: str
    name: str = ""
    created: str = ""
    story: Story | None = None
    scene_plan: ScenePlan | None = None
    images: list[ImageRef] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
