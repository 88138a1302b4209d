"""The motion-model contract shared by the procedural rules and the learned model."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flowact.motion.params import MotionChunk
from flowact.types import ControlChunk


@runtime_checkable
class MotionModel(Protocol):
    """ControlChunk (audio features, visemes, expressions, events, state) -> per-frame motion.

    Implementations keep their own history (for continuity across chunks) and must be cheap:
    this runs once per chunk on the render thread.
    """

    def step(self, control: ControlChunk) -> MotionChunk:
        """Motion for the chunk's frames; continuous with the previous call."""

    def interrupt(self) -> None:
        """Barge-in: blend towards the listening pose over the next few frames."""

    def reset(self) -> None:
        """Forget history."""
