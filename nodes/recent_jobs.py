"""3DLabs Recent Jobs: the local journal of paid jobs as a node, so a result paid for before a crash or
restart can be found and collected with Job Wait."""

from __future__ import annotations

import os
import time

from .api.errors import ValidationError
from .api.journal import Journal
from .types import Node


def format_age(seconds: float) -> str:
    for limit, unit, per in ((90, "s", 1), (5400, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / per:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} days ago"


class ThreeDLabsRecentJobs(Node):
    SEARCH_ALIASES = ["recent jobs", "job history", "journal", "paid jobs"]
    DESCRIPTION = ("Lists the most recent 3DLabs jobs from the local journal (id, kind, state, age), so that a "
                   "result paid for before a crash or restart can be collected with Job Wait.")
    # Their text is the point: alone on a canvas, Run must have an output to run.
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("text", "job_ids")
    OUTPUT_TOOLTIPS = ("One line per job: id, kind, state, age, label.", "The listed job ids, one per line.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"limit": ("INT", {"default": 20, "min": 1, "max": 500,
                                                "tooltip": "How many jobs to list, newest first."})}}

    @classmethod
    def IS_CHANGED(cls, limit=20):
        # Re-run exactly when the journal changed: reading it is free, and it never submits anything.
        try:
            st = os.stat(Journal().path)
            return f"{st.st_mtime_ns}:{st.st_size}:{limit}"
        except OSError:
            return f"none:{limit}"

    def run(self, limit):
        if limit < 1:
            raise ValidationError(f"limit must be 1 or more, not {limit}.")
        now, journal = time.time(), Journal()
        records = journal.recent(limit)
        lines = [f"{r['id']}\t{r.get('kind', '?')}\t{r.get('state', '?')}\t"
                 f"{format_age(now - float(r.get('submitted_at') or r.get('updated_at') or now))}\t{r.get('label', '')}"
                 for r in records]
        text = "\n".join(lines) or "(no 3DLabs jobs recorded yet)"
        note = journal.damage_note()  # the paid jobs a damaged journal took with it are not missed silently
        text = f"{note}\n{text}" if note else text
        ids = "\n".join(r["id"] for r in records if not r["id"].startswith("unknown-"))
        return {"ui": {"text": [text]}, "result": (text, ids)}
