"""Images, found by structure: every http(s) URL, ``data:`` URL or base64 image in a job result or a
project, at any depth, without duplicates, ordered by the scene number of the nearest object around
them that has one (images without one follow, in document order); that number is the reference's
``scene``.

A string counts when it is the whole answer or sits under an image-like key (vocabulary.IMAGE_KEY)
and reads as an image reference (:func:`classify`). Subtrees under keys naming something else (audio,
an avatar, an input image, an error, a prompt) or typed as something else are not looked into. An
object gives at most one image of its own strings (the same picture may come as a URL and as base64);
thumbnails, previews and covers count only when nothing else is found.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from ..errors import ResponseFormatError
from ..models import ImageRef
from . import vocabulary as V
from .basics import MAX_DEPTH, MAX_ITEMS, MAX_VISITS, describe, get, maybe_json

MAX_IMAGES = 1_000  # image references returned by one call
MAX_URL = 16_384  # presigned CDN URLs run to a few kB; longer is not a URL to fetch
_DATA_URL = re.compile(r"data:(?:image/[a-z0-9.+-]+|application/octet-stream)?(?:;[a-z0-9=._+-]+)*;base64,", re.I)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
# Openings of base64 PNG, JPEG, GIF, WEBP and TIFF files: base64 outside a base64 key must start like
# one, since a word or a prompt is valid base64 too.
_MAGIC = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "SUkqAA", "TU0AKg")


def _base64(value: str, need_magic: bool) -> bool:
    compact = re.sub(r"\s+", "", value)
    return (len(compact) >= 16 and len(compact) % 4 != 1 and bool(_BASE64.fullmatch(compact))
            and (not need_magic or compact.startswith(_MAGIC)))


def classify(value: str, *, base64_key: bool = False) -> ImageRef | None:
    """One string as an image reference, or None: http(s) URLs with a host; base64 ``data:`` URLs of an
    image, octet-stream or unnamed type; raw base64 under a base64 key, or anywhere when it starts like
    an image file. Other schemes, relative paths and text are refused: the pack fetches what it finds."""
    found = value.strip()
    head = found[:16].lower()
    if head.startswith("data:"):
        match = _DATA_URL.match(found)
        return ImageRef("data", found) if match and _base64(found[match.end():], False) else None
    if head.startswith(("http://", "https://")):
        try:
            parts = urlsplit(found)
            usable = (len(found) <= MAX_URL and not _UNSAFE.search(found) and bool(parts.hostname)
                      and not V.NOT_IMAGE_PATH.search(parts.path))
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return None
        return ImageRef("url", found) if usable and parts.scheme in ("http", "https") else None
    if not found or _SCHEME.match(found) or not _base64(found, not base64_key):
        return None
    return ImageRef("base64", found)


def _walk(value: Any, key: str | None, scene: int | None, secondary: bool, depth: int, found: dict,
          budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        return
    if isinstance(value, str):
        decoded = maybe_json(value)
        if decoded is not None and depth < MAX_DEPTH:
            _walk(decoded, key, scene, secondary, depth + 1, found, budget)
        elif key is None or V.IMAGE_KEY.search(key):
            _add(found, classify(value, base64_key=bool(key and V.BASE64_KEY.search(key))), secondary, scene)
    elif depth >= MAX_DEPTH:
        return
    elif isinstance(value, list):
        for item in value[:MAX_ITEMS]:
            _walk(item, key, scene, secondary, depth + 1, found, budget)
    elif isinstance(value, dict) and not V.NOT_IMAGE_TYPE.search(get(V.MEDIA_TYPE, value)):
        number = get(V.SCENE_NUMBER, value)
        scene = scene if number is None else number
        own: set[bool] = set()  # one image of the object's own strings, and one secondary one
        for name, inner in value.items():
            if not isinstance(name, str) or V.NOT_IMAGE_KEY.search(name):
                continue
            minor = secondary or bool(V.SECONDARY_IMAGE_KEY.search(name))
            if isinstance(inner, str):
                inner = maybe_json(inner) or inner  # some back ends keep structured fields as JSON text
            if not isinstance(inner, str):
                _walk(inner, name, scene, minor, depth + 1, found, budget)
            elif minor not in own and V.IMAGE_KEY.search(name):
                ref = classify(inner, base64_key=bool(V.BASE64_KEY.search(name)))
                if ref is not None:
                    own.add(minor)
                    _add(found, ref, minor, scene)


def _add(found: dict, ref: ImageRef | None, secondary: bool, scene: int | None) -> None:
    """Keep the first place of each image, moved into a scene (or out of the thumbnails) when it shows
    up again in one."""
    if ref is None:
        return
    old = found.get(ref)
    if old is None and len(found) < MAX_IMAGES:
        found[ref] = (secondary, scene, len(found))
    elif old is not None and (old[0], old[1] is None) > (secondary, scene is None):
        found[ref] = (secondary, scene, old[2])


def find_images(value: Any) -> list[ImageRef]:
    """Every image in ``value`` (see the module's docstring); an empty list when there is none."""
    found: dict[ImageRef, tuple[bool, int | None, int]] = {}
    _walk(value, None, None, False, 0, found, [MAX_VISITS])
    chosen = [item for item in found.items() if not item[1][0]] or list(found.items())
    chosen.sort(key=lambda item: (item[1][1] is None, item[1][1] or 0, item[1][2]))
    return [ref if scene is None else replace(ref, scene=scene) for ref, (_, scene, _) in chosen]


def read_image_refs(result: Any) -> list[ImageRef]:
    """Every image of an image job's result, in order; nothing usable raises, naming the keys seen."""
    refs = find_images(result)
    if not refs:
        raise ResponseFormatError(f"no image URL or image data in the result ({describe(result)})")
    return refs
