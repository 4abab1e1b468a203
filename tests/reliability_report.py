"""How the reliability tests publish their figures (docs/reliability.md quotes them)."""

from __future__ import annotations

import json
import os


def report(name: str, **figures) -> None:
    """Print the figures (pytest -s) and append them to $THREEDLABS_RELIABILITY_REPORT if set."""
    print(f"\n[reliability] {name}: {json.dumps(figures, sort_keys=True)}")
    path = os.environ.get("THREEDLABS_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": name, **figures}, sort_keys=True) + "\n")
