"""3DLabs Image Generate node: one prompt or a list of prompts in, one IMAGE batch out, in order.

A list of N prompts (Scene Plan's prompts output) is submitted together, waited for concurrently and
returned as one [N,H,W,3] batch in scene order, ready for ImageScaleBy or CreateVideo.
"""

from __future__ import annotations

from . import comfy, images, previews
from .api import validation
from .api.endpoints import IMAGES, image_body
from .api.errors import BatchError, ValidationError
from .run import NodeRun
from .types import ASPECT_RATIOS, ASPECT_SIZES, IMAGE_PROVIDERS, SEED, Node, choices, scalar_input

IMAGE_TIMEOUT = 900.0


def flatten_prompts(value) -> list:
    out: list = []
    for item in value if isinstance(value, list) else [value]:
        out.extend(flatten_prompts(list(item)) if isinstance(item, (list, tuple)) else [item])
    return out


def as_list(batch) -> list:
    """One single-image batch per image: views of the batch, not copies."""
    return [batch[i:i + 1] for i in range(int(batch.shape[0]))]


def scene_numbers(count: int, scene_number: int) -> list[int | None]:
    """0 numbers list items 1..N (a single prompt gets none); N>0 numbers them N, N+1, ..."""
    if scene_number > 0:
        return list(range(scene_number, scene_number + count))
    return list(range(1, count + 1)) if count > 1 else [None]


def build_bodies(prompts, provider, model, aspect_ratio, project_id, scene_number) -> list[dict]:
    prompts = flatten_prompts(prompts)
    if not prompts:
        raise ValidationError("The prompt list is empty: connect Scene Plan's prompts or type a prompt.")
    numbers = scene_numbers(len(prompts), int(scene_number or 0))
    return [image_body(p, provider=provider, model=model, aspect_ratio=aspect_ratio, project_id=project_id,
                       scene_number=n, index=i if len(prompts) > 1 else None)
            for i, (p, n) in enumerate(zip(prompts, numbers))]


class ThreeDLabsImageGenerate(Node):
    SEARCH_ALIASES = ["flux", "flux dev", "flux schnell", "text to image", "scene images", "image generate",
                      "replicate", "gemini image", "api image"]
    DESCRIPTION = ("Generates images with the 3DLabs API (Flux and others). Takes one prompt, or the list of prompts "
                   "from Scene Plan; all are submitted together and come back as one IMAGE batch in order. With "
                   "wait off it returns the job ids at once: collect them later with Job Wait.")
    RETURN_TYPES = ("IMAGE", "MASK", "STRING", "IMAGE")
    RETURN_NAMES = ("images", "masks", "job_ids", "image_list")
    OUTPUT_IS_LIST = (False, False, False, True)
    OUTPUT_TOOLTIPS = (
        "The images as one batch, in prompt order (grey placeholders in a dry run, a small black one when "
        "wait is off).",
        "Masks from the images' alpha channels (zeros when they have none).",
        "The 3DLabs job ids, one per line.",
        "The same images as a list, one per prompt: a node connected here runs once per scene (e.g. an "
        "image-to-video model).",
    )
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "prompt": ("STRING", {
                    "multiline": True, "default": "A lighthouse on a cliff at dusk, cinematic",
                    "tooltip": "One prompt, or connect Scene Plan's prompts for one image per scene."}),
                "provider": choices(IMAGE_PROVIDERS, "The image service 3DLabs uses."),
                "model": ("STRING", {"default": "flux-schnell", "tooltip": (
                    "Model slug: flux-schnell (fast), flux-dev (better), or any slug the provider offers.")}),
                "aspect_ratio": choices(ASPECT_RATIOS, "Shape of the images (16:9 is 1344x768)."),
                "scene_number": ("INT", {"default": 0, "min": 0, "max": 999, "tooltip": (
                    "Scene number sent with the image; 0 numbers list items 1..N.")}),
                "seed": SEED,
                "wait": ("BOOLEAN", {"default": True, "tooltip": (
                    "Off: return the job ids at once (with a placeholder image) and collect them with Job Wait.")}),
            },
            "optional": {
                "project_id": ("STRING", {"default": "", "tooltip": "Optional 3DLabs project to attach images to."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, prompt=None):
        # ComfyUI pins this message on every input the method takes and checks the choices itself for
        # the others, so it takes the prompt alone; the model slug is checked at run time, before any
        # request. Only widget values arrive here: a linked prompt list is checked at run time too.
        try:
            prompts = [p for p in flatten_prompts(prompt) if p is not None]
            for i, value in enumerate(prompts):
                validation.prompt(value, index=i if len(prompts) > 1 else None)
        except ValidationError as err:
            return err.detail
        return True

    @comfy.in_thread
    def run(self, prompt, provider, model, aspect_ratio, scene_number, seed, wait, project_id=None, unique_id=None):
        one = scalar_input
        bodies = build_bodies(prompt, one(provider), one(model), one(aspect_ratio), one(project_id, ""),
                              one(scene_number, 0))
        wait = bool(one(wait, True))
        with NodeRun("3DLabs Image Generate", one(unique_id)) as run:
            text = run.dry_run(IMAGES, bodies)
            if text is not None:
                width, height = ASPECT_SIZES.get(bodies[0]["aspectRatio"], (1024, 1024))
                image = images.placeholder_images(len(bodies), width, height)
                mask = images.empty_mask(len(bodies), width, height)
                ids = ["dry-run"] * len(bodies)
                return {"ui": {"text": [text]}, "result": (image, mask, "\n".join(ids), as_list(image))}
            try:
                result = run.jobs("image", IMAGES, bodies, one(seed, 0), labels=[b["prompt"][:80] for b in bodies],
                                  timeout=IMAGE_TIMEOUT, wait=wait, with_images=True)
            except BatchError as err:
                done = sum(r is not None for r in err.results)
                raise BatchError(err.failures, err.results, hint=(
                    f"Queue again to retry: the {done} finished image(s) are reused without paying again."
                )) from None
            if wait:
                image, mask = run.images
                ids = [job.id for job in result]
                text = f"{image.shape[0]} image(s) of {image.shape[2]}x{image.shape[1]} from {len(ids)} job(s)."
            else:
                image, mask = images.empty_image(64, 64, 1)
                ids = result
                text = f"Submitted {len(ids)} job(s); collect them with 3DLabs Job Wait:\n" + "\n".join(ids)
            text = run.finish(text)
        # The pictures at their real size replace the small live previews (and their "512 x 293" label).
        ui = {"text": [text]}
        if wait and (shown := previews.ui_images(image)):
            ui["images"] = shown
        return {"ui": ui, "result": (image, mask, "\n".join(ids), as_list(image))}
