"""The masking of secrets: every error message and log line of the pack passes through :func:`redact`.

Tokens in use are registered and masked exactly; bearer headers and JWT-shaped words are masked by shape.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# No pattern for key-shaped words (sk-..., key_..., tdl-...): job ids take such shapes too, and a masked
# job id is a paid job nobody can collect. Keys in use are registered (register_secret) and masked exactly.

# A 60 s token command mints about 1,700 tokens a day, so only the newest MAX_SECRETS are kept; a token
# in use is registered again on every use and so stays.
MAX_SECRETS = 64
_secrets: OrderedDict[str, None] = OrderedDict()
_secrets_lock = threading.Lock()
_secrets_pattern: re.Pattern[str] | None = None


def register_secret(secret: str | None) -> None:
    """Remember a secret so that every later error message and log line masks it."""
    global _secrets_pattern
    if not secret or len(secret) < 6:
        return
    with _secrets_lock:
        if secret in _secrets:
            _secrets.move_to_end(secret)
            return
        _secrets[secret] = None
        while len(_secrets) > MAX_SECRETS:
            _secrets.popitem(last=False)
        # Longest first, so that a secret containing another is masked whole.
        _secrets_pattern = re.compile("|".join(map(re.escape, sorted(_secrets, key=len, reverse=True))))


def redact(text: object) -> str:
    """Return ``text`` as a string with every known or token-shaped secret masked."""
    out = str(text)
    if _secrets_pattern is not None:
        out = _secrets_pattern.sub("***", out)
    return _JWT.sub("***", _BEARER.sub(r"\1***", out))
