"""Configs of the local inputs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WavInputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="audio file with the user's speech (WAV, or anything FFmpeg reads)")
    chunk_ms: int = Field(20, ge=5, le=200)
    realtime: bool = Field(True, description="pace the file like a live microphone")
    lead_silence_s: float = Field(0.0, ge=0.0, le=60.0)
    trail_silence_s: float = Field(1.0, ge=0.0, le=60.0, description="silence fed after the file (endpointing)")


class StdinInputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = "you> "


class ScriptInputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="YAML list of user lines: strings or {text: ..., pause_s: ...}")


class NoInputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
