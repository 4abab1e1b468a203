"""The pack's version and the User-Agent it sends (kept in sync with pyproject.toml by a test)."""

__version__ = "0.1.0"
USER_AGENT = f"comfyui-3dlabs/{__version__} (+https://github.com/3dlabs/comfyui-3dlabs)"
