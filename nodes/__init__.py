"""Node package of the 3DLabs pack; no imports here, so that ``nodes.api`` loads without torch or ComfyUI."""
