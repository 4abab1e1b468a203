"""A local stand-in for the hosted 3DLabs REST API, with made-up but deterministic content.

Serves the demo, the tests and users without an account: ``SandboxServer(...).start()`` runs the API
on loopback (``api_url`` ends in ``/api``, like the published base URL) and a second server that plays
the image CDN. ``python -m sandbox`` runs it from a shell. Standard library only, plus Pillow when an
image is first drawn; importing this package stays cheap because the server loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Faults", "SandboxServer"]


def __getattr__(name: str) -> Any:
    if name == "SandboxServer":
        from .server import SandboxServer

        return SandboxServer
    if name == "Faults":
        from .faults import Faults

        return Faults
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
