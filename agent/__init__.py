"""flowact-agent orchestrator: conversation (ASR -> LLM -> TTS) driving a streaming avatar.

The public API: `load_config(path, overrides=...)` -> `AgentConfig`; `AgentSession(config)` runs
it (`async with session: await session.run_until_done()`); `SessionObserver` subclasses watch it
(`TranscriptLog` prints and keeps the conversation); errors derive from `FlowActError`
(`UserError` for what the user must fix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig, load_config
from agent.errors import ConfigError, FlowActError, UserError
from agent.interfaces import SessionObserver
from agent.transcript import TranscriptLog

if TYPE_CHECKING:
    from agent.session import AgentSession

__all__ = [
    "AgentConfig",
    "AgentSession",
    "ConfigError",
    "FlowActError",
    "SessionObserver",
    "TranscriptLog",
    "UserError",
    "load_config",
]


def __getattr__(name: str) -> Any:
    """`AgentSession` imports the whole pipeline: load it on first use."""
    if name == "AgentSession":
        from agent.session import AgentSession

        return AgentSession
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
