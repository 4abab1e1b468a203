"""Made-up but plausible text: stories, scene plans and the seeded projects, deterministic from inputs.

Everything here is a pure function of its arguments (hashed into a seed), so the same request always
yields the same story: clients can test caching and the demo looks the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Any

WORDS_PER_MINUTE = 130
BEATS_PER_MINUTE = 3
DEFAULT_SCENE_RANGE = (6.0, 12.0)  # seconds per scene for models without fixed clip lengths
TARGET_SCENE_SECONDS = 7.5
CLIP_MODELS = (("veo", 8.0), ("kling", 5.0), ("runway", 5.0))  # substring of videoModel -> clip length

_HEROES = ("Mara", "Tobias", "Ines", "Oskar", "Leila", "Wren", "Juno", "Ezra", "Noor", "Felix", "Ada",
           "Cyrus")
_ALLIES = (
    "an old ferryman", "a curious fox", "a retired clockmaker", "a stray dog with one ear",
    "the night-shift baker", "a girl who collects maps", "a lighthouse mechanic", "a wandering cellist",
)
_PLACES = (
    "a fog-bound harbour town", "a village at the edge of a salt marsh", "a city of narrow stairways",
    "a lighthouse on a basalt point", "a mountain station above the clouds", "an orchard valley",
    "a desert observatory", "a river market at dawn",
)
_OBJECTS = (
    "a brass compass", "a cracked lantern", "a letter that was never sent", "a map drawn in chalk",
    "a music box", "a faded photograph", "a key with no lock", "a jar of sea glass",
)
_TIMES = (
    "at first light", "under a copper sunset", "in the blue hour", "during a slow autumn rain",
    "beneath a sky full of gulls", "on the longest night of winter",
)
_STAGES = ("setup", "inciting", "rising", "crisis", "climax", "resolution")
_STAGE_ENDS = (0.17, 0.3, 0.62, 0.75, 0.88, 1.01)
_HEADINGS = {
    "setup": ("An Ordinary Morning", "The Quiet Before", "Home Ground"),
    "inciting": ("The Knock at the Door", "A Strange Sign", "The Message"),
    "rising": ("Into the Unknown", "The Long Road", "Strangers and Clues", "The Storm", "Crossing Over",
               "The Far Shore"),
    "crisis": ("Lost in the Dark", "The Breaking Point", "Nothing Left to Try"),
    "climax": ("Facing It", "The Last Idea", "One Brave Step"),
    "resolution": ("Homecoming", "A New Shape of Things", "The Open Door"),
}
_SENTENCES = {
    "setup": (
        "{Time}, {hero} wakes in {place}, where every day keeps the same quiet shape.",
        "Nobody in {place} talks much about {topic}, but {hero} thinks about it constantly.",
        "{Hero} keeps {object} on the windowsill, a reminder of someone who left long ago.",
        "The wind carries salt and woodsmoke through the streets, and the gulls argue on the roofs.",
        "Life is small and careful here, and {hero} has learned to like it that way.",
    ),
    "inciting": (
        "Then, {time}, something changes: {object} begins to behave strangely.",
        "A knock at the door brings {ally}, breathless, with news about {topic}.",
        "{Hero} finds a message scratched into the old stone wall, and it names {hero} alone.",
        "For the first time in years, the ordinary rhythm of {place} breaks.",
    ),
    "rising": (
        "{Hero} sets out with {ally}, following clues that only half make sense.",
        "Every step away from home feels heavier, yet {hero} keeps walking.",
        "They learn that {topic} is older and stranger than anyone admitted.",
        "A storm closes the road behind them, so the only way is forward.",
        "{Ally} tells a story about the last person who tried this, and how it ended.",
        "At a crossroads, {object} seems to point the way, and {hero} decides to trust it.",
        "The nights grow colder, and the stars look close enough to touch.",
        "They share bread by a small fire and say more than they meant to.",
    ),
    "crisis": (
        "Everything goes wrong at once: the path gives way and {object} slips into the dark.",
        "{Hero} sits alone {time}, certain that the whole journey was a mistake.",
        "The doubt is louder than the wind, and for a while {hero} listens to it.",
        "Even {ally} falls silent, and the silence is the hardest part.",
    ),
    "climax": (
        "Remembering a small lesson from home, {hero} tries one last, unlikely idea.",
        "{Hero} faces {topic} directly, voice shaking but steady enough.",
        "The moment stretches, silent, until the world seems to lean in and listen.",
        "With {ally} at the side, {hero} takes the step that cannot be taken back.",
    ),
    "resolution": (
        "When {hero} returns to {place}, the streets look the same, yet everything has shifted.",
        "{Object} sits on the windowsill again, no longer a reminder but a promise.",
        "{Ally} laughs for the first time in the whole journey, and {hero} laughs too.",
        "{Time}, the story closes the way it opened: quietly, but with the door left open.",
    ),
}
_SMALL_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with"})
_SHOTS = ("Wide establishing shot", "Medium shot", "Close-up", "Over-the-shoulder shot", "Low-angle shot",
          "Aerial view", "Tracking shot")
_LIGHT = ("soft morning light", "golden hour glow", "moody blue twilight", "warm lantern light",
          "overcast diffuse light", "dramatic rim light")
_STYLES = ("storybook watercolor", "cinematic film still, 35mm", "painterly concept art",
           "soft 3D animation style", "muted gouache illustration")


def seeded_rng(*parts: Any) -> random.Random:
    """A Random seeded from a stable hash of ``parts`` (never Python's salted ``hash``)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clean_topic(topic: str) -> str:
    return re.sub(r"\s+", " ", topic).strip().rstrip(".!?")


def story(topic: str, max_minutes: float, provider: str = "gemini") -> dict:
    """A story sized to ``max_minutes``: about 3 beats and 130 narrated words per minute."""
    rng = seeded_rng("story", topic, float(max_minutes), provider)
    topic_text = _clean_topic(topic)
    cast = {
        "hero": rng.choice(_HEROES),
        "ally": rng.choice(_ALLIES),
        "place": rng.choice(_PLACES),
        "object": rng.choice(_OBJECTS),
        "time": rng.choice(_TIMES),
        "topic": topic_text,
    }
    slots = dict(cast)
    slots.update({key.capitalize(): _capitalised(value) for key, value in cast.items()})

    beat_count = max(3, round(BEATS_PER_MINUTE * float(max_minutes)))
    total_words = round(WORDS_PER_MINUTE * float(max_minutes))
    unused = {stage: rng.sample(pool, len(pool)) for stage, pool in _SENTENCES.items()}
    used_headings: set[str] = set()
    beats = []
    for index in range(beat_count):
        stage = _stage_of(index, beat_count)
        budget = total_words * (index + 1) // beat_count - total_words * index // beat_count
        beats.append({
            "beat": index + 1,
            "heading": _heading(stage, rng, used_headings),
            "narration": _narration(stage, budget, unused, rng, slots),
        })
    object_noun = _title_case(cast["object"].split(" ", 1)[1])
    titles = [f"{cast['hero']} and the {object_noun}", f"The {object_noun}"]
    if len(topic_text.split()) <= 7:
        titles.append(_title_case(topic_text))
    return {
        "title": rng.choice(titles),
        "logline": (f"{cast['hero']}, who lives in {cast['place']}, must face {topic_text} "
                    f"after {cast['object']} sets an unlikely journey in motion."),
        "topic": topic,
        "maxMinutes": max_minutes,
        "provider": provider,
        "beats": beats,
    }


def _title_case(text: str) -> str:
    words = text.split()
    return " ".join(
        word if i and word.lower() in _SMALL_WORDS else _capitalised(word) for i, word in enumerate(words)
    )


def _stage_of(index: int, count: int) -> str:
    if index == 0:
        return "setup"
    if index == count - 1:
        return "resolution"
    position = (index + 0.5) / count
    return next(stage for stage, end in zip(_STAGES, _STAGE_ENDS, strict=True) if position < end)


def _heading(stage: str, rng: random.Random, used: set[str]) -> str:
    fresh = [h for h in _HEADINGS[stage] if h not in used]
    heading = rng.choice(fresh) if fresh else f"{rng.choice(_HEADINGS[stage])} ({len(used) + 1})"
    used.add(heading)
    return heading


def _narration(stage: str, budget: int, unused: dict[str, list[str]], rng: random.Random,
               slots: dict[str, str]) -> str:
    sentences: list[str] = []
    words = 0
    while True:
        if not unused[stage]:  # a long story reuses a stage's lines only once all have been told
            unused[stage] = rng.sample(_SENTENCES[stage], len(_SENTENCES[stage]))
        length = len(unused[stage][-1].format(**slots).split())
        if sentences and words + length / 2 > budget:  # stop nearest the budget, over or under
            break
        sentences.append(unused[stage].pop())
        words += length
    # Told in the order the lines were written, so an opening line never lands mid-beat.
    return " ".join(line.format(**slots) for line in sorted(sentences, key=_SENTENCES[stage].index))


def clip_seconds(video_model: str | None) -> float | None:
    """Fixed clip length of a video model (scenes are whole clips), or None for free-length scenes."""
    name = (video_model or "").lower()
    return next((seconds for key, seconds in CLIP_MODELS if key in name), None)


def scene_plan(story_obj: Any, max_minutes: float, video_model: str | None = None,
               scene_count: int | None = None) -> dict:
    """Scenes whose durations (multiples of 0.5 s, or of the clip length) add up to ``totalDuration``."""
    canonical = json.dumps(story_obj, sort_keys=True, default=str)
    rng = seeded_rng("plan", canonical, float(max_minutes), video_model or "")
    clip = clip_seconds(video_model)
    unit = clip or 0.5
    units = int(math.floor(float(max_minutes) * 60 / unit + 1e-9))
    if clip:
        low, high = 1, max(1, math.ceil(DEFAULT_SCENE_RANGE[1] / clip))
    else:
        low, high = int(DEFAULT_SCENE_RANGE[0] / unit), int(DEFAULT_SCENE_RANGE[1] / unit)
    count = scene_count or max(3, round(units * unit / TARGET_SCENE_SECONDS))
    if scene_count is None:
        count = min(max(count, math.ceil(units / high)), max(1, units // low))
    lengths = _allocate(units, count, low, high, rng)

    passages = _passages(story_obj)
    style = rng.choice(_STYLES)
    owners = [index * len(passages) // count for index in range(count)]
    scenes = []
    for index, length in enumerate(lengths):
        owner = owners[index]
        heading, sentences = passages[owner]
        share = owners.count(owner)
        part = index - owners.index(owner)
        chosen = sentences[part * len(sentences) // share:(part + 1) * len(sentences) // share]
        chosen = chosen or [sentences[min(part, len(sentences) - 1)]]
        narration = " ".join(chosen)
        visual = _capitalised(chosen[0].rstrip(".!?"))
        scenes.append({
            "sceneNumber": index + 1,
            "title": heading if part == 0 else f"{heading}, continued",
            "imagePrompt": f"{rng.choice(_SHOTS)}: {visual}, {rng.choice(_LIGHT)}, {style}",
            "narration": narration,
            "duration": length * unit,
        })
    return {"scenes": scenes, "totalDuration": units * unit, "videoModel": video_model, "style": style}


def _allocate(units: int, count: int, low: int, high: int, rng: random.Random) -> list[int]:
    """Split ``units`` into ``count`` parts within [low, high], widening the range only if it cannot fit."""
    count = max(1, min(count, units))
    low = min(low, units // count)
    high = max(high, math.ceil(units / count))
    parts = [low] * count
    for _ in range(units - low * count):
        open_slots = [i for i, part in enumerate(parts) if part < high]
        parts[rng.choice(open_slots)] += 1
    return parts


def _passages(story_obj: Any) -> list[tuple[str, list[str]]]:
    """(heading, sentences) per story section; a story of unknown shape is read for any text it holds."""
    beats = story_obj.get("beats") if isinstance(story_obj, dict) else None
    if isinstance(beats, list) and beats and all(isinstance(b, dict) for b in beats):
        found = [(str(b.get("heading") or f"Part {i + 1}"), _sentences(str(b.get("narration") or "")))
                 for i, b in enumerate(beats)]
        found = [(heading, sentences) for heading, sentences in found if sentences]
        if found:
            return found
    sentences = _sentences(" ".join(_strings(story_obj)))
    if not sentences:
        sentences = ["A quiet scene unfolds."]
    size = max(1, math.ceil(len(sentences) / 6))
    return [(f"Part {i // size + 1}", sentences[i:i + size]) for i in range(0, len(sentences), size)]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]


DEMO_PROJECT_ID = "proj_demo"
DEMO_NAME = "The Lighthouse Keeper's Cat"
DEMO_TOPIC = "a lighthouse keeper's cat who is afraid of the sea"
DEMO_CREATED = "2025-01-06T10:00:00.000Z"
DEMO_UPDATED = "2025-01-06T10:24:00.000Z"
DEMO_MODEL = "flux-schnell"


def demo_project(workspace_id: str) -> dict:
    """The seeded project of a workspace: a story, a 4-scene plan and one image per scene."""
    return _seeded_project(workspace_id, DEMO_PROJECT_ID, DEMO_NAME, DEMO_TOPIC, (DEMO_CREATED, DEMO_UPDATED),
                           (1, 2, 3, 4), lambda n: demo_image_name(workspace_id, n))


def demo_image_name(workspace_id: str, scene_number: int) -> str:
    return f"demo_{workspace_id}_{scene_number}"


# A project still being made: its plan has 4 scenes, but only 2 have an image so far.
PARTIAL_PROJECT_ID = "proj_partial"
PARTIAL_NAME = "The Clock That Ran Backwards"
PARTIAL_TOPIC = "a clockmaker whose last clock runs backwards"
PARTIAL_IMAGE_SCENES = (1, 3)


def partial_project(workspace_id: str) -> dict:
    """The seeded partial project of a workspace: a story, a 4-scene plan, images for scenes 1 and 3."""
    # Older than the demo, so the demo stays first in the session list.
    return _seeded_project(workspace_id, PARTIAL_PROJECT_ID, PARTIAL_NAME, PARTIAL_TOPIC,
                           ("2025-01-03T15:10:00.000Z", "2025-01-03T15:31:00.000Z"), PARTIAL_IMAGE_SCENES,
                           lambda n: f"partial_{workspace_id}_{n}")


def _seeded_project(workspace_id: str, project_id: str, name: str, topic: str, dates: tuple[str, str],
                    image_scenes: tuple[int, ...], image_name) -> dict:
    """A stored project of a 1-minute, 4-scene plan; ``scenes`` lists the scenes with a seeded image."""
    seeded_story = story(topic, 1, "gemini")
    seeded_story["title"] = name
    plan = scene_plan(seeded_story, 1, None, scene_count=4)
    scenes = [
        {"sceneNumber": s["sceneNumber"], "imagePrompt": s["imagePrompt"], "image": image_name(s["sceneNumber"])}
        for s in plan["scenes"] if s["sceneNumber"] in image_scenes
    ]
    return {
        "id": project_id,
        "name": name,
        "createdAt": dates[0],
        "updatedAt": dates[1],
        "workspaceId": workspace_id,
        "topic": topic,
        "story": seeded_story,
        "scenePlan": plan,
        "scenes": scenes,
    }
