"""The Generator contract: one reference portrait in, a stream of video chunks out.

    gen = SomeGenerator(config)
    await gen.start(reference)              # analyse the portrait (cached by hash)
    async for chunk in gen.stream(controls): # ControlChunk -> VideoChunk, never stalls
        ...
    gen.interrupt()                         # ease back to the listening pose within a few frames
    await gen.aclose()
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from flowact.types import ControlChunk, VideoChunk

ReferenceInput = str | Path | bytes | np.ndarray


@runtime_checkable
class Generator(Protocol):
    """A streaming humanoid generator (procedural+renderer, learned motion, or pixel model)."""

    width: int
    height: int

    async def start(self, reference: ReferenceInput) -> None:
        """Load and analyse the reference portrait; raise flowact.errors.PortraitError on bad input."""

    def stream(self, controls: AsyncIterator[ControlChunk]) -> AsyncIterator[VideoChunk]:
        """Render each control chunk to a video chunk, in order, off the event loop."""

    async def render_chunk(self, control: ControlChunk) -> VideoChunk:
        """Render one control chunk (the unit `stream` is built from)."""

    def interrupt(self) -> None:
        """Barge-in: blend back to the listening pose within a few frames."""

    def reset(self) -> None:
        """Forget motion history (keeps the analysed reference)."""

    async def aclose(self) -> None:
        """Release threads and caches."""
