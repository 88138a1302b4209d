"""A barge-in reaches the sink: a sink that queues media (`Interruptible`) is told to drop it at the
interruption, and what the media loop writes after that is silent, with no fade (real espeak TTS,
portrait generator): the room's audio stopped when the sink dropped its queue, and a 10 ms fade of the
old answer written after that was heard as a blip 40-80 ms into the silence (and held the relay's
"quiet" back by as much)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.events import UserMessage, UserSpeechStarted
from agent.interfaces import Interruptible
from agent.media import AUDIBLE_PEAK, MediaLoop, PipelineItem
from flowact.types import AgentState, VideoChunk
from plugins.sink_file.sink import NullSink
from tests.fixtures.session_parts import make_session

pytestmark = pytest.mark.timeout(120)


class QueueingSink(NullSink):
    """A NullSink that keeps what it was given and when it was told to drop its queue."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[VideoChunk] = []
        self.drops: list[int] = []  # len(self.written) at each drop_queued_media()

    async def write(self, chunk: VideoChunk) -> None:
        await super().write(chunk)
        self.written.append(chunk)

    def drop_queued_media(self) -> None:
        self.drops.append(len(self.written))


async def test_barge_in_tells_a_queueing_sink_to_drop_its_media() -> None:
    sink = QueueingSink()
    assert isinstance(sink, Interruptible) and not isinstance(NullSink(), Interruptible)
    session, rec = make_session(first_token_s=0.05, sink=sink)
    async with session:
        now = session.clock.now
        session._emit(UserMessage("tell me about my order", t_end=now()))
        await session._conversation.wait_for(lambda: session.state == AgentState.SPEAKING)  # type: ignore[union-attr]
        await session._media.wait_written(sink.chunks + 2)  # type: ignore[union-attr]  # speech reached the sink
        session._emit(UserSpeechStarted(now()))
        await session._media.wait_written(sink.chunks + 4)  # type: ignore[union-attr]
    assert [p["reason"] for _, k, p in rec.events if k == "interrupt"] == ["barge-in"]
    assert len(sink.drops) == 1, sink.drops
    before, after = sink.written[: sink.drops[0]], sink.written[sink.drops[0] :]
    assert any(int(np.abs(c.audio).max(initial=0)) >= AUDIBLE_PEAK for c in before)  # it was speaking
    loud = sum(int((np.abs(c.audio.astype(np.int32)) >= AUDIBLE_PEAK).sum()) for c in after)
    assert len(after) >= 3 and loud == 0, loud


@pytest.mark.parametrize(("sink", "first"), [(QueueingSink(), 2), (NullSink(), 1)])
def test_the_first_cut_chunk_fades_only_where_it_follows_what_the_sink_plays(sink: NullSink, first: int) -> None:
    """Chunks still being built at a barge-in are cut (`PipelineItem.mute`: 1 fade out, 2 silent). A
    sink that plays everything in order hears the first one continue the speech it played: it fades
    out over 10 ms. A sink that dropped its queue has already gone quiet: every cut chunk is silent."""
    loop = MediaLoop.__new__(MediaLoop)  # the cut alone: no tasks, no timeline
    loop.sink = sink
    loop._inflight = [PipelineItem(control=None, video=None, speech_run=1) for _ in range(3)]  # type: ignore[arg-type]
    assert loop.mute_pending() == 3
    assert [item.mute for item in loop._inflight] == [first, 2, 2]
