"""The flagship pipeline through the pack's own node classes, outside ComfyUI.

topic -> 3DLabs Story -> Scene Plan -> Image Generate (one image per scene, concurrently) -> a local
2x upscale in torch -> story, plan, every scene image and a contact sheet written to a folder.

Against the bundled sandbox by default (started in-process on loopback). With THREEDLABS_TOKEN set it
runs against the real 3DLabs service (THREEDLABS_BASE_URL or the published URL) and says so: that
spends credits.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

PACK_DIR = Path(__file__).resolve().parent.parent


def load_pack():
    """Import the pack the way ComfyUI does: by file location, under its path-derived name."""
    name = str(PACK_DIR).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, lambda dotted: importlib.import_module(f"{name}.{dotted}")


def call(node_cls, **kwargs) -> SimpleNamespace:
    """Run a node as ComfyUI does and return its outputs by name (RETURN_NAMES): outputs appended to a
    node later, as the public contract allows, never shift what a caller reads."""
    node = node_cls()
    out = getattr(node, node.FUNCTION)(**kwargs)
    if asyncio.iscoroutine(out):
        out = asyncio.run(out)
    result = out["result"] if isinstance(out, dict) else out
    return SimpleNamespace(**dict(zip(node_cls.RETURN_NAMES, result, strict=True)))


def upscale_2x(images):
    import torch

    # [B,H,W,C] -> [B,C,H,W] for interpolate, and back: what ImageScaleBy does, without ComfyUI.
    x = images.movedim(-1, 1)
    y = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False)
    return y.clamp_(0, 1).movedim(1, -1).contiguous()


def contact_sheet(images, columns: int = 3, thumb_width: int = 448):
    import torch

    b, h, w, _ = images.shape
    th = max(1, round(h * thumb_width / w))
    thumbs = torch.nn.functional.interpolate(images.movedim(-1, 1), size=(th, thumb_width), mode="area")
    rows = (b + columns - 1) // columns
    pad = 8
    sheet = torch.ones(3, rows * (th + pad) + pad, columns * (thumb_width + pad) + pad)
    for i in range(b):
        r, c = divmod(i, columns)
        y, x = pad + r * (th + pad), pad + c * (thumb_width + pad)
        sheet[:, y:y + th, x:x + thumb_width] = thumbs[i]
    return sheet.movedim(0, -1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", default="A lighthouse keeper's cat who guides lost ships home through the fog")
    parser.add_argument("--minutes", type=int, default=1, help="story length in minutes (1-5)")
    parser.add_argument("--aspect-ratio", default="16:9")
    parser.add_argument("--out", default=None, help="output folder (default: demo-output/<time>)")
    parser.add_argument("--job-seconds", type=float, default=1.5, help="sandbox job duration")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pack, mod = load_pack()
    sandbox = None
    if os.environ.get("THREEDLABS_TOKEN", "").strip() or os.environ.get("THREEDLABS_TOKEN_COMMAND", "").strip():
        print("THREEDLABS_TOKEN is set: running against the REAL 3DLabs service; this spends credits.")
    else:
        sandbox = mod("sandbox.server").SandboxServer(job_seconds=args.job_seconds).start()
        os.environ["THREEDLABS_BASE_URL"] = sandbox.api_url
        os.environ["THREEDLABS_TOKEN"] = sandbox.static_token
        print(f"Running against the bundled SANDBOX at {sandbox.api_url} (made-up content, no account needed).")
    os.environ.setdefault("THREEDLABS_USER_DIR", str(PACK_DIR / "demo-output" / ".user"))
    images_mod = mod("nodes.images")
    nodes = pack.NODE_CLASS_MAPPINGS
    out = Path(args.out or PACK_DIR / "demo-output" / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)

    try:
        t0 = time.monotonic()
        story = call(nodes["3DLabsStory"], topic=args.topic, max_minutes=args.minutes, provider="gemini", seed=0)
        print(f"Story '{story.story.title}' (job {story.job_id}) in {time.monotonic() - t0:.1f} s")
        plan = call(nodes["3DLabsScenePlan"], story=story.story, max_minutes=args.minutes, seed=0)
        count = plan.scene_count
        print(f"Scene plan: {count} scenes (job {plan.job_id})")
        t1 = time.monotonic()
        generated = call(
            nodes["3DLabsImageGenerate"], prompt=plan.prompts, provider=["replicate"], model=["flux-schnell"],
            aspect_ratio=[args.aspect_ratio], scene_number=[0], seed=[0], wait=[True])
        images, job_ids = generated.images, generated.job_ids
        print(f"{images.shape[0]} scene images {tuple(images.shape)} from {count} concurrent jobs in "
              f"{time.monotonic() - t1:.1f} s")
        big = upscale_2x(images)
        (out / "story.txt").write_text(story.story_text + "\n", encoding="utf-8")
        (out / "scene_plan.txt").write_text(plan.plan_text + "\n", encoding="utf-8")
        (out / "job_ids.txt").write_text(f"story {story.job_id}\nplan {plan.job_id}\n{job_ids}\n", encoding="utf-8")
        for i in range(big.shape[0]):
            (out / f"scene_{i + 1:02d}.png").write_bytes(images_mod.tensor_to_png_bytes(big[i]))
        (out / "contact_sheet.png").write_bytes(images_mod.tensor_to_png_bytes(contact_sheet(images)))
        print(f"Upscaled 2x locally to {big.shape[2]}x{big.shape[1]}.")
        print(f"Wrote story, plan, {big.shape[0]} scene images and a contact sheet to: {out}")
    finally:
        if sandbox is not None:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
