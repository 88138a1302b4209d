"""Config of the Coqui TTS plugin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CoquiTTSConfig"]


class CoquiTTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # CPML-licensed models (XTTS) ask for licence agreement on load: set COQUI_TOS_AGREED=1 yourself.
    model_name: str | None = Field(None, description="a Coqui model id, e.g. tts_models/en/ljspeech/vits")
    model_path: str | None = Field(None, description="checkpoint file (.pth) of your own model")
    config_path: str | None = Field(None, description="its config.json (default: config.json beside model_path)")
    allow_download: bool = Field(
        False, description="let Coqui fetch model_name into its cache; off: only an already cached model loads"
    )
    speaker: str | None = Field(None, description="speaker name of a multi-speaker model")
    language: str | None = Field(None, description="language of a multilingual model")
    timeout_s: float = Field(60.0, gt=0, description="per sentence")

    @model_validator(mode="after")
    def _one_model(self) -> CoquiTTSConfig:
        if (self.model_name is None) == (self.model_path is None):
            raise ValueError("tts: set exactly one of model_name or model_path")
        return self
