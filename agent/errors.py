"""One exception tree for the whole agent. Vendor errors become these at the plugin edge.

Every error carries `retryable`: True when trying the same call again may succeed (timeouts,
connection resets, 5xx), False for errors the user must fix (bad config, bad input, missing model).
`UserError` subclasses are printed as one clear line by the CLI (exit code 2), never a traceback.
"""

from __future__ import annotations

from flowact.errors import FlowActError, ModelError, PortraitError

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


class AgentError(Exception):
    """Base of agent errors."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class UserError(AgentError):
    """Something the user must fix (bad config, bad file); shown as one line, exit code 2."""


class ConfigError(UserError):
    """Invalid configuration: the message names the file, the field and the fix."""


class InputError(UserError):
    """Unreadable or unsuitable input (audio file, script, text)."""


class EngineError(AgentError):
    """An engine (ASR, LLM, TTS, VAD) failed. `engine` names it."""

    def __init__(self, engine: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{engine}: {message}", retryable=retryable)
        self.engine = engine


class TransportError(AgentError):
    """A transport/sink (LiveKit, MQTT, file) failed."""
