"""Agent errors: subclasses of the project's one error root, `flowact.errors.FlowActError`.

`UserError`, `ConfigError` and `InputError` live with the root (flowact raises them too) and are
re-exported here; `EngineError` and `TransportError` are the agent's runtime failures.
"""

from __future__ import annotations

from flowact.errors import ConfigError, FlowActError, InputError, ModelError, PortraitError, UserError

__all__ = [
    "AgentError",
    "ConfigError",
    "EngineError",
    "FlowActError",
    "InputError",
    "ModelError",
    "PortraitError",
    "TransportError",
    "UserError",
]


class AgentError(FlowActError):
    """A runtime failure of the agent's engines or transports."""


class EngineError(AgentError):
    """An engine (ASR, LLM, TTS, VAD) failed. `engine` names it."""

    def __init__(self, engine: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{engine}: {message}", retryable=retryable)
        self.engine = engine


class TransportError(AgentError):
    """A transport/sink (LiveKit, MQTT, file) failed."""
