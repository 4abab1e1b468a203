"""A node's result images shown at their real size: JPEG copies in ComfyUI's temp folder, as ``ui.images``.

While jobs run, each scene's picture travels as a small preview through ComfyUI's progress bar (at most
``--preview-size`` pixels, 512 by default), and the frontend labels the picture it shows with its pixel
size: left there, a 1344x768 result reads "512 x 293". The finished batch takes its place, as core
PreviewImage does, at full size. JPEG, because a preview is all it is (the IMAGE output is untouched) and
it is written some thirty times quicker than a PNG of the same picture.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from PIL import Image

from . import comfy

log = logging.getLogger("3dlabs")
PREFIX = "3dlabs_preview"
QUALITY = 92


def ui_images(batch) -> list[dict]:
    """Write an IMAGE batch ``[B,H,W,3]`` as previews; their ``ui.images`` entries ([] without ComfyUI).

    Never raises: a preview must not fail a paid result.
    """
    folder = comfy.temp_directory()
    if folder is None or batch is None:
        return []
    tag = secrets.token_hex(4)  # one name per run: a re-run never shows another run's file
    try:
        pixels = batch.clamp(0, 1).mul(255).round().byte().cpu().numpy()
        out = []
        for i, frame in enumerate(pixels):
            name = f"{PREFIX}_{tag}_{i + 1:03d}.jpg"
            Image.fromarray(frame, "RGB").save(Path(folder) / name, "JPEG", quality=QUALITY)
            out.append({"filename": name, "subfolder": "", "type": "temp"})
        return out
    except Exception:  # noqa: BLE001
        log.warning("3DLabs: could not write the node's image previews", exc_info=True)
        return []
