"""The published job-creating endpoints and their request bodies, exactly as published.

Pure functions: each validates the user's values (raising ValidationError before anything is sent)
and builds the body with the published field names. No HTTP here, so nodes can build and check
bodies (and dry runs can show them) without loading the HTTP stack.
"""

from __future__ import annotations

from . import validation

STORIES = "claude/stories"
SCENE_PLANNING = "claude/scene-planning"
IMAGES = "images/generate"


def _with_optional(body: dict, **fields) -> dict:
    """``body``, then each optional published field that has a value: an absent field is left unset."""
    return {**body, **{name: value for name, value in fields.items() if value}}


def story_body(topic, max_minutes, *, project_id=None, provider="gemini") -> dict:
    body = {"topic": validation.topic(topic), "maxMinutes": validation.max_minutes(max_minutes),
            "provider": validation.choice("provider", provider, validation.STORY_PROVIDERS)}
    return _with_optional(body, projectId=validation.optional_id("project_id", project_id))


def scene_plan_body(story, max_minutes, *, video_model=None) -> dict:
    body = {"story": validation.story_object(story), "maxMinutes": validation.max_minutes(max_minutes)}
    return _with_optional(body, videoModel=str(video_model or "").strip())


def image_body(prompt, *, provider="replicate", model="flux-schnell", aspect_ratio="16:9",
               project_id=None, scene_number=None, index: int | None = None) -> dict:
    body = {
        "prompt": validation.prompt(prompt, index=index),
        "provider": validation.choice("provider", provider, validation.IMAGE_PROVIDERS),
        "model": validation.model_slug(model),
        "aspectRatio": validation.choice("aspect_ratio", aspect_ratio, validation.ASPECT_RATIOS),
    }
    return _with_optional(body, projectId=validation.optional_id("project_id", project_id),
                          sceneNumber=validation.scene_number(scene_number))
