"""Config of the espeak-ng TTS plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EspeakTTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = Field("en-us", description="espeak-ng voice name, e.g. en-us, en-gb, en-us+f3")
    rate_wpm: int = Field(165, ge=80, le=450)
    pitch: int = Field(50, ge=0, le=99)
    library: str = Field("libespeak-ng.so.1", description="shared library name or path")
    timeout_s: float = Field(20.0, gt=0, description="per sentence")
