"""Tolerant readers: decoded 3DLabs JSON in, the pack's plain values (``models``) out.

What the pack assumes about the API's answers (docs/openapi.yaml describes the same shapes): one module
per resource, every key they look under in ``vocabulary`` (one table of fields per value), read by one
walker (``basics.read``); docs/readers.md. A reader returns its value or raises ResponseFormatError naming
the keys it saw. Framework-free: no torch, no requests, no ComfyUI.
"""

from .basics import describe
from .images import find_images, read_image_refs
from .jobs import normalize_status, read_job, read_job_id, read_progress, unwrap
from .projects import read_session, read_sessions, read_workspaces
from .scenes import read_scene_plan
from .story import read_story
from .vocabulary import STATUS_SYNONYMS

__all__ = ["STATUS_SYNONYMS", "describe", "find_images", "normalize_status", "read_image_refs", "read_job",
           "read_job_id", "read_progress", "read_scene_plan", "read_session", "read_sessions", "read_story",
           "read_workspaces", "unwrap"]
