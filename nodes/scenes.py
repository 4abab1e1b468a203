"""3DLabs Scene Plan and Scene Select nodes: a story becomes ordered scenes with prompts and timing."""

from __future__ import annotations

import math

from . import comfy
from .api import validation
from .api.endpoints import SCENE_PLANNING, scene_plan_body
from .api.errors import ValidationError
from .api.models import Scene, ScenePlan, Story
from .run import NodeRun
from .types import SCENE_PLAN, SEED, STORY, Node, max_minutes_input

PLAN_TIMEOUT = 900.0
DRY_RUN_SCENES_PER_MINUTE = 4
FRAME_RULES = ("4n+1", "8n+1", "N")  # Wan's clip lengths, LTX's, any count


def frame_count(seconds: float | None, fps: float, rule: str) -> int:
    """The frames a scene of ``seconds`` needs at ``fps``: the fewest of the rule's form that last that long."""
    needed = max(1, int(math.floor(float(seconds or 0.0) * float(fps) + 0.5)))
    step = {"4n+1": 4, "8n+1": 8}.get(rule)
    if step is None:
        return needed
    return 1 + step * math.ceil((needed - 1) / step)


def story_payload(story):
    """The object to send back to scene-planning: the typed value's raw story, or pasted JSON."""
    if isinstance(story, Story):
        return story.raw
    if isinstance(story, (list, tuple)) and len(story) == 1:  # a 1-item list from a list-mode upstream
        return story_payload(story[0])
    return validation.story_object(story)


class ThreeDLabsScenePlan(Node):
    SEARCH_ALIASES = ["scene plan", "storyboard plan", "shot list", "scenes", "topic to video", "script to scenes"]
    DESCRIPTION = ("Plans the scenes of a story with the 3DLabs API: one image prompt, narration and duration per "
                   "scene. The prompts output is a list: connect it to 3DLabs Image Generate for one image per scene.")
    # Outputs after job_id came later: appended, so the links of saved workflows keep their numbers.
    RETURN_TYPES = (SCENE_PLAN, "STRING", "INT", "STRING", "STRING", "STRING", "FLOAT", "INT")
    RETURN_NAMES = ("scene_plan", "prompts", "scene_count", "plan_text", "job_id", "narrations", "durations",
                    "frame_counts")
    OUTPUT_IS_LIST = (False, True, False, False, False, True, True, True)
    OUTPUT_TOOLTIPS = (
        "The scene plan: for Scene Select and Storyboard Timeline.",
        "One image prompt per scene, in scene order (a list).",
        "How many scenes the plan has.",
        "The plan as readable text.",
        "The 3DLabs job id of this plan.",
        "Each scene's narration, in scene order (a list): for a text-to-speech node, one scene at a time.",
        "Each scene's duration in seconds, in scene order (a list; 0 where the plan gives none).",
        "Each scene's frame count at clip_fps by frame_rule, in scene order (a list): for an image-to-video "
        "model's length input.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "story": (f"{STORY},STRING", {
                    "tooltip": "The story from 3DLabs Story, or story JSON text from a string node."}),
                "max_minutes": max_minutes_input("Length of the video to plan, in minutes (1-5)."),
                "seed": SEED,
            },
            "optional": {
                "video_model": ("STRING", {"default": "", "tooltip": (
                    "Optional video model name; 3DLabs plans scene durations to suit its clip lengths.")}),
                "clip_fps": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 60.0, "step": 0.5, "tooltip": (
                    "Frame rate for frame_counts (16 for Wan, 24 or 25 for LTX). Not sent to 3DLabs.")}),
                "frame_rule": (list(FRAME_RULES), {"default": FRAME_RULES[0], "tooltip": (
                    "The frame counts a video model accepts: 4n+1 (Wan), 8n+1 (LTX) or any (N). Each scene "
                    "gets the fewest that last its duration. Not sent to 3DLabs.")}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, video_model=None):
        # One input only: ComfyUI pins the message on every input this takes, and checks max_minutes'
        # range itself.
        try:
            validation.video_model(video_model)
        except ValidationError as err:
            return err.detail
        return True

    @comfy.in_thread
    def run(self, story, max_minutes, seed=0, video_model="", clip_fps=16.0, frame_rule=FRAME_RULES[0],
            unique_id=None):
        if frame_rule not in FRAME_RULES or not float(clip_fps) > 0:  # checked before anything is paid
            raise ValidationError(f"frame_rule must be one of {', '.join(FRAME_RULES)} and clip_fps positive, "
                                  f"not {frame_rule!r} at {clip_fps!r}.")
        body = scene_plan_body(story_payload(story), max_minutes, video_model=validation.video_model(video_model))
        dry_story = isinstance(body["story"], dict) and bool(body["story"].get("dryRun"))
        with NodeRun("3DLabs Scene Plan", unique_id) as run:
            if run.dry_run(SCENE_PLANNING, [body], shown={**body, "story": "<story object>"}, force=dry_story):
                count = round(body["maxMinutes"] * DRY_RUN_SCENES_PER_MINUTE)
                scenes = [Scene(i + 1, f"Dry run scene {i + 1}", "", body["maxMinutes"] * 60 / count, {})
                          for i in range(count)]
                plan = ScenePlan(scenes, raw={"dryRun": True, "scenes": []}, job_id="dry-run")
            else:
                [job] = run.jobs("scene-plan", SCENE_PLANNING, [body], seed, labels=["scene plan"],
                                 timeout=PLAN_TIMEOUT)
                plan = run.client.scene_plan_of(job)
                plan.job_id = job.id
                empty = [s.number for s in plan.scenes if not s.image_prompt.strip()]
                note = f" Scenes without an image prompt: {empty}." if empty else ""
                run.finish(f"Scene plan ready: {len(plan.scenes)} scenes (job {job.id}).{note}")
        text = plan.text()
        prompts = [s.image_prompt for s in plan.scenes]
        per_scene = ([s.narration for s in plan.scenes], [float(s.duration or 0.0) for s in plan.scenes],
                     [frame_count(s.duration, clip_fps, frame_rule) for s in plan.scenes])
        return {"ui": {"text": [text]}, "result": (plan, prompts, len(plan.scenes), text, plan.job_id, *per_scene)}


class ThreeDLabsSceneSelect(Node):
    SEARCH_ALIASES = ["scene select", "pick scene", "scene prompt", "narration"]
    DESCRIPTION = "Picks one scene of a 3DLabs scene plan: its image prompt, narration and duration."
    RETURN_TYPES = ("STRING", "STRING", "FLOAT")
    RETURN_NAMES = ("prompt", "narration", "duration_seconds")
    OUTPUT_TOOLTIPS = ("The scene's image prompt.", "The scene's narration (may be empty).",
                       "The scene's planned duration in seconds (0 when the plan gives none).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "scene_plan": (SCENE_PLAN, {"tooltip": "A plan from 3DLabs Scene Plan or Load Project."}),
            "index": ("INT", {"default": 1, "min": 1, "max": 999, "tooltip": "Which scene, counting from 1."}),
        }}

    def run(self, scene_plan: ScenePlan, index: int):
        scenes = scene_plan.scenes
        if not 1 <= index <= len(scenes):
            raise ValidationError(f"index {index} is outside the plan, which has scenes 1 to {len(scenes)}.")
        scene = scenes[index - 1]
        return (scene.image_prompt, scene.narration, float(scene.duration or 0.0))
