"""Configuration of the local preview page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PreviewConfig"]


class PreviewConfig(BaseModel):
    """Where the page is served and how much each browser may lag before frames are dropped."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="bind address; keep it local (the page has no login)")
    port: int = Field(8765, ge=0, le=65535, description="0 picks a free port (see PreviewSink.url)")
    jpeg_quality: int = Field(80, ge=10, le=100)
    max_width: int = Field(0, ge=0, description="downscale frames wider than this for the page (0 = no)")
    client_queue: int = Field(48, ge=4, le=1000, description="messages buffered per browser before dropping")
    max_clients: int = Field(8, ge=1, le=100)
    microphone: bool = Field(
        False,
        description="accept the browser microphone as the user's audio (the session then needs vad/asr)",
    )
    max_text_chars: int = Field(2000, ge=1, le=20000)
    text_queue: int = Field(16, ge=1, le=1000)
    mic_queue: int = Field(200, ge=10, le=10000, description="mic blocks buffered (about 64 ms each)")
