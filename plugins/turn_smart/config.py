"""`vad.end_of_turn`: how a VAD plugin decides that the user's turn is over (shared by every VAD)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EndOfTurnConfig"]


class EndOfTurnConfig(BaseModel):
    """`silence`: the turn ends after the VAD's `end_silence_ms`. `smart_turn`: after `pause_ms` the
    Smart Turn v3.2 model judges the utterance; complete -> end at once, incomplete -> wait up to
    `max_silence_ms` (the VAD's `end_silence_ms` then only applies if the model fails).
    With `early_asr_ms`, each pause that long hands the utterance so far to the ASR (in either mode),
    so the transcript is (nearly) ready when the turn ends; it is dropped if the user goes on.
    A bare string (`end_of_turn: smart_turn`) selects the mode with default settings."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["silence", "smart_turn"] = "silence"
    pause_ms: int = Field(200, ge=50, le=2000, description="silence before the model is asked")
    max_silence_ms: int = Field(2500, ge=100, le=10000, description="an incomplete turn ends after this silence")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="probability of 'complete' that ends the turn")
    verdict_wait_ms: int = Field(
        300, ge=0, le=5000, description="if the model has not answered this long after the pause, the audio "
        "feed waits for it (keeps decisions stable when audio comes faster than real time)",
    )
    model_path: str | None = Field(None, description="default: ~/.cache/flowact/models/smart-turn-v3.2-cpu.onnx")
    threads: int = Field(1, ge=1, le=8, description="onnxruntime intra-op threads")
    text_complete_ms: int | None = Field(
        600, ge=100, le=10000, description="with early_asr_ms: when the early transcript reads as a finished "
        "turn, an incomplete verdict waits only this much silence (null: the model alone decides)",
    )
    early_asr_ms: int | None = Field(
        None, ge=30, le=2000, description="silence after a word at which the utterance so far goes to ASR "
        "while the end of turn is still being decided (null: ASR starts at the end of turn)",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_mode(cls, v: Any) -> Any:
        return {"mode": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _order(self) -> EndOfTurnConfig:
        if self.max_silence_ms <= self.pause_ms:
            raise ValueError("end_of_turn.max_silence_ms must be longer than pause_ms")
        return self
