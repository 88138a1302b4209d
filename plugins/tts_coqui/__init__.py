"""Coqui TTS (`coqui-tts`, imports as `TTS`): optional extra in its own venv (torch 2.9.1 + torchaudio 2.9)."""

from plugins.tts_coqui.config import CoquiTTSConfig
from plugins.tts_coqui.tts import CoquiTTS, split_sentences

__all__ = ["CoquiTTS", "CoquiTTSConfig", "split_sentences"]
