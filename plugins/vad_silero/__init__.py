"""Silero VAD v6 through onnxruntime, using the ONNX model that faster-whisper ships."""

from plugins.vad_silero.config import SileroVADConfig
from plugins.vad_silero.vad import SileroVAD

__all__ = ["SileroVAD", "SileroVADConfig"]
