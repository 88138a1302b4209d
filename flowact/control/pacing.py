"""Chunks of a `ControlBuilder` on the media clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flowact.clock import Clock, Pacer
from flowact.control.builder import ControlBuilder
from flowact.types import ControlChunk

__all__ = ["paced_chunks"]


async def paced_chunks(
    builder: ControlBuilder, clock: Clock, *, start: float, lead_s: float = 0.0
) -> AsyncIterator[ControlChunk]:
    """Yield chunk k when `clock.now() >= start + k * chunk_duration - lead_s`, forever.

    A consumer that falls behind gets the missed chunks back to back (the timeline never skips
    audio); a consumer that is early waits on the clock.
    """
    pacer = Pacer(clock, builder.chunk_duration, start=start, lead=lead_s)
    while True:
        await pacer.wait()
        yield builder.next_chunk()
