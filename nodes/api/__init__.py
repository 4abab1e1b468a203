"""The 3DLabs API client: framework-free (no torch, no ComfyUI), usable from any script."""
