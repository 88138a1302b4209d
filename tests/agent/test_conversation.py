"""The conversation stage: events in, turns out (real espeak TTS and portrait generator, scripted LLM).

Covers what the session's typed events promise: a false early end (the user pauses, then goes on
while the answer is still being thought) gives one answer to the whole question; a real barge-in
stays a barge-in; the media loop's speech events drive the turn's end and its latency marks,
counted from the user's last word; the session warms its engines before it listens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agent.events import UserMessage, UserSpeechEnded, UserSpeechStarted
from agent.interfaces import ChatMessage
from flowact.types import AgentState
from plugins.llm_scripted import ScriptedLLM, ScriptedLLMConfig
from plugins.tts_espeak import EspeakTTS, EspeakTTSConfig
from tests.fixtures.session_parts import make_session, user_texts

pytestmark = pytest.mark.timeout(120)


async def test_false_early_end_gives_one_answer_to_the_whole_question() -> None:
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=1.5)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        now = session.clock.now
        session._emit(UserMessage("my order number is", t_end=now(), last_word=now() - 0.3))
        await asyncio.sleep(0.3)
        assert session.state == AgentState.THINKING and session.turn_count == 1
        session._emit(UserSpeechStarted(now()))  # the user goes on, the answer has not started
        assert session.state == AgentState.LISTENING
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("1234", t_end=now()))
        await session.wait_idle(timeout=60)
    assert user_texts(llm) == ["my order number is", "my order number is 1234"]
    interrupts = [p for _, k, p in rec.events if k == "interrupt"]
    assert [p["reason"] for p in interrupts] == ["continued"]
    assert session.metrics.barge_ins == 0  # going on is not a barge-in
    agent_lines = [p["text"] for _, k, p in rec.events if k == "transcript" and p["role"] == "agent"]
    assert agent_lines == ["Order 1234 arrives tomorrow."]  # one answer
    assert list(session.history) == [("my order number is 1234", "Order 1234 arrives tomorrow.")]


async def test_a_short_answer_is_said_after_its_spoken_question() -> None:
    """A one-word answer is whole (all its speech queued) before the first of it plays, which is when
    a spoken question settles: the transcript still says the question first (the demo's record read
    agent, user, agent, user on a loaded box)."""
    session, rec = make_session(reply="Yes.", first_token_s=0.01)
    async with session:
        now = session.clock.now
        for question in ("is my order on its way", "and the other one"):
            session._emit(UserMessage(question, t_end=now()))
            await session.wait_idle(timeout=60)
    lines = [(p["role"], p["text"]) for _, k, p in rec.events if k == "transcript" and p.get("final")]
    assert lines == [("user", "is my order on its way"), ("agent", "Yes."),
                     ("user", "and the other one"), ("agent", "Yes.")], lines


async def test_onset_while_speaking_is_still_a_barge_in() -> None:
    session, rec = make_session(first_token_s=0.05)
    async with session:
        now = session.clock.now
        session._emit(UserMessage("tell me about my order", t_end=now()))
        await session._conversation.wait_for(lambda: session.state == AgentState.SPEAKING)  # type: ignore[union-attr]
        session._emit(UserSpeechStarted(now()))
        assert session.state == AgentState.LISTENING
    assert [p["reason"] for _, k, p in rec.events if k == "interrupt"] == ["barge-in"]
    assert session.metrics.barge_ins == 1


async def test_latency_is_counted_from_the_last_word() -> None:
    session, _ = make_session(reply="Sure, here it is.", first_token_s=0.1)
    async with session:
        now = session.clock.now
        session._emit(UserMessage("hello", t_end=now(), last_word=now() - 0.25))
        await session.wait_idle(timeout=60)
    (row,) = session.metrics.turn_table()
    assert row["endpoint_s"] == pytest.approx(0.25, abs=0.01)
    # what the user hears and sees counts the endpoint wait too, and comes after the breakdown's stages
    assert row["heard_s"] == pytest.approx(row["first_audio"] + 0.25, abs=0.01)
    assert row["seen_s"] <= row["heard_s"]
    assert 0 < row["llm_first_token"] <= row["tts_first_audio"] <= row["first_audio"]


class _WarmTTS(EspeakTTS):
    """espeak, recording when its warm-up call finished."""

    prepared_at: float | None = None

    async def prepare(self) -> None:
        await super().prepare()
        self.prepared_at = time.monotonic()


class _TypedOnce:
    """A text input recording when the session first reads it (that is, starts listening)."""

    read_at: float | None = None

    async def text(self) -> AsyncIterator[str]:
        self.read_at = time.monotonic()
        yield "hello"


async def test_engines_are_warm_before_the_session_listens() -> None:
    tts = _WarmTTS(EspeakTTSConfig(), sample_rate=24000)
    typed = _TypedOnce()
    session, _ = make_session(reply="Hi.", tts=tts, text_input=typed)
    async with session:
        await session.wait_idle(timeout=60)
        await session._conversation.wait_for(lambda: session.turn_count == 1)  # type: ignore[union-attr]
        await session.wait_idle(timeout=60)
    assert tts.prepared_at is not None and typed.read_at is not None
    assert tts.prepared_at <= typed.read_at  # warm before listening
    assert session.metrics.warmup_s is not None


async def test_a_spoken_session_rehearses_a_real_sentence_before_it_listens() -> None:
    """The agent's TTS says a whole sentence and the ASR (real Whisper) hears it before the session
    listens: the first question meets a warm decoder, not one that only heard warm-up noise."""
    from tests.fixtures.session_parts import QueueMic

    session, _ = make_session(mic=QueueMic())
    async with session:
        asr = session.c.asr
        assert asr is not None
        stats = asr.stats  # type: ignore[attr-defined]
        assert stats.calls == 1 and stats.audio_in_s > 2.0  # the rehearsal, before any user speech
        assert session.metrics.warmup_s is not None


async def test_session_face_picks_the_person_in_a_group_photo(tmp_path: Path) -> None:
    """A group photo is refused with its list of faces; `session.face` picks one and the avatar runs."""
    from PIL import Image

    from flowact.errors import PortraitError
    from tests.fixtures.portraits import group

    photo = tmp_path / "group.png"
    Image.fromarray(group(2)).save(photo)
    refused, _ = make_session(portrait=str(photo))
    with pytest.raises(PortraitError, match="faces"):
        async with refused:
            pass
    session, _ = make_session(portrait=str(photo), face=1)
    async with session:
        await session._media.wait_written(3)  # type: ignore[union-attr]
        gen = session.c.generator
        assert gen is not None and gen.config.face == 1  # type: ignore[attr-defined]
        assert gen.config.isolate_face is False  # type: ignore[attr-defined]
    assert session.metrics.frames_written >= 3 * session.timeline.frames_per_chunk
    alone, _ = make_session(portrait=str(photo), face=1, isolate_face=True)
    async with alone:
        await alone._media.wait_written(3)  # type: ignore[union-attr]
        gen = alone.c.generator
        assert gen is not None and gen.config.isolate_face is True  # type: ignore[attr-defined]


async def test_transcript_of_a_pause_while_the_user_goes_on_waits_for_the_rest() -> None:
    """The end of turn fired at a pause, but the user was already speaking again when its transcript
    came: no answer to the fragment, one answer to the whole question."""
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=0.2)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        now = session.clock.now
        session._emit(UserSpeechStarted(now()))
        session._emit(UserSpeechEnded(now()))
        session._emit(UserSpeechStarted(now()))  # goes on before the transcript of the first part is back
        session._emit(UserMessage("hello, my order", t_end=now()))
        assert session.turn_count == 0 and session.state == AgentState.LISTENING
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("number 1234 has not arrived", t_end=now()))
        await session.wait_idle(timeout=60)
    assert user_texts(llm) == ["hello, my order number 1234 has not arrived"]
    assert session.turn_count == 1


class _PrimedLLM(ScriptedLLM):
    """The scripted LLM with a prompt cache to prime (records what it was primed with)."""

    def __init__(self, config: ScriptedLLMConfig) -> None:
        super().__init__(config)
        self.primed: list[list[str]] = []
        self.cache_behind = False

    async def warmup(self, messages: Sequence[ChatMessage]) -> None:
        self.primed.append([m.content for m in messages])


async def test_an_early_transcript_primes_the_llm_only_while_no_turn_runs() -> None:
    """With early answers off (`session.early_answer: false`; see tests/agent/test_early_answer.py)."""
    session, _ = make_session(early_answer=False)
    llm = _PrimedLLM(ScriptedLLMConfig(replies=["Order 1234 arrives tomorrow."], first_token_s=0.5))
    session.c.llm = llm
    async with session:
        llm.primed.clear()  # the warm-up before listening
        session._prefill("where is order 1234")
        await session._prefill_task  # type: ignore[misc]
        assert llm.primed and llm.primed[-1][-1] == "where is order 1234"  # the question, after the system prompt
        session._emit(UserMessage("hello", t_end=session.clock.now()))
        session._prefill("and another thing")  # a turn uses the LLM: no priming
        assert len(llm.primed) == 1
        await session.wait_idle(timeout=60)
