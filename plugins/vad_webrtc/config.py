"""Config of the WebRTC VAD plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugins.turn_smart import EndOfTurnConfig

__all__ = ["WebrtcVADConfig"]


class WebrtcVADConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aggressiveness: int = Field(2, ge=0, le=3, description="0 = least, 3 = most aggressive at rejecting non-speech")
    frame_ms: int = Field(20, description="analysis frame: 10, 20 or 30 ms")
    min_level_db: float = Field(
        -55.0, le=0.0, description="frames quieter than this (dBFS RMS) are never speech: webrtcvad alone "
        "flags faint stationary noise as speech for its first ~0.5 s while its noise model adapts",
    )
    smooth_frames: int = Field(5, ge=1, le=50, description="majority vote over this many frames")
    min_speech_ms: int = Field(150, ge=10)
    end_silence_ms: int = Field(600, ge=50, description="trailing silence that ends the user's turn")
    pre_roll_ms: int = Field(250, ge=0)
    max_utterance_s: float = Field(30.0, gt=1)
    end_of_turn: EndOfTurnConfig = Field(
        default_factory=EndOfTurnConfig, description="silence (default) or smart_turn (model-judged end of turn)"
    )

    @field_validator("frame_ms")
    @classmethod
    def _frame(cls, v: int) -> int:
        if v not in (10, 20, 30):
            raise ValueError("webrtcvad analyses 10, 20 or 30 ms frames")
        return v
