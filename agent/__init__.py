"""flowact-agent orchestrator: conversation (ASR -> LLM -> TTS) driving a streaming avatar."""

from agent.config import AgentConfig, load_config, parse_config
from agent.errors import AgentError, ConfigError, EngineError, InputError, TransportError, UserError
from agent.frames import (
    AgentState,
    AudioChunk,
    ControlChunk,
    IntentTag,
    Interrupt,
    SpeechChunk,
    TextDelta,
    Transcript,
    VideoChunk,
)
from flowact.clock import Clock, FakeClock, RealClock

__all__ = [
    "AgentConfig",
    "AgentError",
    "AgentState",
    "AudioChunk",
    "Clock",
    "ConfigError",
    "ControlChunk",
    "EngineError",
    "FakeClock",
    "InputError",
    "IntentTag",
    "Interrupt",
    "RealClock",
    "SpeechChunk",
    "TextDelta",
    "Transcript",
    "TransportError",
    "UserError",
    "VideoChunk",
    "load_config",
    "parse_config",
]
