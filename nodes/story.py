"""3DLabs Story node: a topic in, a story (typed value and readable text) out."""

from __future__ import annotations

from . import comfy
from .api import validation
from .api.endpoints import STORIES, story_body
from .api.errors import ValidationError
from .api.models import Story
from .run import NodeRun
from .types import SEED, STORY, STORY_PROVIDERS, Node, choices, max_minutes_input

STORY_TIMEOUT = 900.0


class ThreeDLabsStory(Node):
    SEARCH_ALIASES = ["story", "topic to story", "script writer", "llm story", "topic to video", "gemini", "claude"]
    DESCRIPTION = ("Writes a story about a topic with the 3DLabs API (an LLM job). Outputs the story for Scene "
                   "Plan, its readable text, and the job id (collectable later with Job Wait).")
    RETURN_TYPES = (STORY, "STRING", "STRING")
    RETURN_NAMES = ("story", "story_text", "job_id")
    OUTPUT_TOOLTIPS = (
        "The story as 3DLabs returned it: connect to 3DLabs Scene Plan.",
        "The story as readable text (title, logline, narration).",
        "The 3DLabs job id of this story.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "topic": ("STRING", {"multiline": True, "default": "A lighthouse keeper's cat who guides ships home",
                                     "tooltip": "What the story is about."}),
                "max_minutes": max_minutes_input("Length of the video the story is written for, in minutes (1-5)."),
                "provider": choices(STORY_PROVIDERS, "The LLM that writes the story."),
                "seed": SEED,
            },
            "optional": {
                "project_id": ("STRING", {"default": "", "tooltip": "Optional 3DLabs project to save the story in."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, topic=None):
        # ComfyUI shows the message against every input this takes, and checks max_minutes' range and the
        # provider's choices itself: so it takes the topic alone (a value only when the widget is not linked).
        try:
            if topic is not None:
                validation.topic(topic)
        except ValidationError as err:
            return err.detail
        return True

    @comfy.in_thread
    def run(self, topic, max_minutes, provider, seed=0, project_id="", unique_id=None):
        body = story_body(topic, max_minutes, project_id=project_id, provider=provider)
        with NodeRun("3DLabs Story", unique_id) as run:
            text = run.dry_run(STORIES, [body])
            if text is not None:
                story = Story(raw={"title": f"Dry run: {body['topic'][:60]}", "topic": body["topic"], "dryRun": True},
                              text=text, title="Dry run", job_id="dry-run")
            else:
                [job] = run.jobs("story", STORIES, [body], seed, labels=[body["topic"][:80]], timeout=STORY_TIMEOUT)
                story = run.client.story_of(job)
                story.job_id = job.id
                run.finish(f"Story ready (job {job.id}).")
        return {"ui": {"text": [story.text]}, "result": (story, story.text, story.job_id)}
