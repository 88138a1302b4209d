"""espeak-ng TTS through its C library: the lightest offline voice, with phoneme events (ms offsets)."""

from plugins.tts_espeak.config import EspeakTTSConfig
from plugins.tts_espeak.tts import EspeakTTS

__all__ = ["EspeakTTS", "EspeakTTSConfig"]
