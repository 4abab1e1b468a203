"""Node package of the 3DLabs pack.

Deliberately empty of imports so that ``nodes.api`` (the framework-free client) loads on its own,
without torch or ComfyUI; the pack's top-level ``__init__.py`` gathers the node mappings.
"""
