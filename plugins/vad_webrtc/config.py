"""Config of the WebRTC VAD plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WebrtcVADConfig"]


class WebrtcVADConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aggressiveness: int = Field(2, ge=0, le=3, description="0 keeps most audio as speech, 3 filters hardest")
    frame_ms: int = Field(20, description="analysis frame: 10, 20 or 30 ms")
    min_speech_ms: int = Field(120, ge=10)
    end_silence_ms: int = Field(600, ge=30, description="trailing silence that ends the user's turn")
    pre_roll_ms: int = Field(200, ge=0)
    max_utterance_s: float = Field(30.0, gt=1)
