"""flowact: a streaming humanoid generator that animates one reference portrait.

Usable without `agent`: ControlChunk in, VideoChunk out (see flowact.api.Generator).
"""

from flowact.api import Generator
from flowact.errors import FlowActError, ModelError, PortraitError
from flowact.types import (
    CONTROL_VERSION,
    EXPRESSIONS,
    N_MELS,
    VISEMES,
    AgentState,
    ControlChunk,
    ControlEvent,
    VideoChunk,
    VideoFrame,
)

__all__ = [
    "CONTROL_VERSION",
    "EXPRESSIONS",
    "N_MELS",
    "VISEMES",
    "AgentState",
    "ControlChunk",
    "ControlEvent",
    "FlowActError",
    "Generator",
    "ModelError",
    "PortraitError",
    "VideoChunk",
    "VideoFrame",
]
