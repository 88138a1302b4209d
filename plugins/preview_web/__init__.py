"""Local preview page: live avatar with synced audio, a chat box, mic and metrics (aiohttp)."""

from plugins.preview_web.config import PreviewConfig
from plugins.preview_web.sink import PreviewSink

__all__ = ["PreviewConfig", "PreviewSink"]
