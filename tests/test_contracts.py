"""Declared capabilities: each built-in plugin implements the optional Protocols it is meant to
(an implementation that misses one method silently loses the feature, so this is checked here)."""

from __future__ import annotations

import pytest

from agent.interfaces import (
    ASR,
    LLM,
    TTS,
    VAD,
    EventPublisher,
    Preparable,
    SessionBound,
    SessionHooks,
    Startable,
    Warmable,
)
from agent.registry import load_plugin

CAPABILITIES = [
    ("sink", "livekit", SessionHooks),
    ("sink", "livekit", EventPublisher),
    ("sink", "preview", SessionHooks),
    ("llm", "openai", Startable),
    ("llm", "openai", Warmable),
    ("asr", "faster_whisper", Startable),
    ("asr", "faster_whisper", Preparable),
    ("tts", "piper", Preparable),
    ("tts", "espeak", Preparable),
    ("vad", "silero", Startable),
    ("input", "spoken_script", SessionBound),
]
ENGINES = [("vad", "silero", VAD), ("vad", "webrtc", VAD), ("vad", "energy", VAD), ("asr", "faster_whisper", ASR),
           ("llm", "openai", LLM), ("llm", "scripted", LLM), ("tts", "piper", TTS), ("tts", "espeak", TTS)]


@pytest.mark.parametrize(("kind", "name", "protocol"), CAPABILITIES + ENGINES)
def test_builtin_plugins_implement_their_protocols(kind: str, name: str, protocol: type) -> None:
    cls = load_plugin(kind, name)
    missing = [m for m in dir(protocol) if not m.startswith("_") and not hasattr(cls, m)
               and m not in getattr(protocol, "__annotations__", {})]
    assert not missing, f"{kind}.{name} ({cls.__name__}) lacks {missing} of {protocol.__name__}"
