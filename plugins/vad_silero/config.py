"""Config of the Silero VAD plugin (endpointing thresholds in milliseconds)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from plugins.turn_smart import EndOfTurnConfig

__all__ = ["SileroVADConfig"]


class SileroVADConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    min_speech_ms: int = Field(150, ge=30)
    end_silence_ms: int = Field(600, ge=64)
    pre_roll_ms: int = Field(
        400, ge=0, le=2000, description="audio kept before the first voiced window of an utterance: Whisper "
        "hears the soft first word ('I' in 'I played') and some silence before it (measured on piper speech: "
        "96 ms lost the 'I' 8 times in 10, 256 and 400 ms never)",
    )
    max_utterance_s: float = Field(30.0, gt=1)
    model_path: str | None = Field(None, description="default: the model shipped inside faster-whisper")
    end_of_turn: EndOfTurnConfig = Field(
        default_factory=EndOfTurnConfig, description="silence (default) or smart_turn (model-judged end of turn)"
    )
