"""The soak's audio ledger (bench/soak_parts.AudioLedger) on a real session (espeak TTS, the portrait
generator, a scripted LLM): every sample of an answer is booked to the turn that speaks it, also when
the answer was begun early and held (`agent.early_answer`), and a cancelled early answer's audio,
never meant to be heard, is booked to no turn.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agent.events import UserMessage, UserSpeechEnded, UserSpeechStarted
from agent.interfaces import SessionObserver
from agent.session import AgentSession
from bench.soak_parts import AudioLedger, Faults, build_faulty
from flowact.clock import RealClock
from flowact.types import AudioChunk, VideoChunk
from tests.fixtures.session_parts import make_session, session_config

pytestmark = pytest.mark.timeout(180)


class Written(SessionObserver):
    """Hands every chunk the sink was given to the ledger (as the soak's sink subclass does)."""

    def __init__(self, ledger: AudioLedger) -> None:
        self.ledger = ledger
        self.chunks = 0

    def on_video(self, chunk: VideoChunk) -> None:
        self.ledger.written(chunk.audio, chunk.sample_rate)
        self.chunks += 1


def _session() -> tuple[AgentSession, AudioLedger, Written]:
    cfg = session_config()
    holder: list[AgentSession] = []
    ledger = AudioLedger(cfg.session.sample_rate, lambda: holder[0].turn_count)
    tts = build_faulty(cfg.plugins["tts"], "tts", Faults(), ledger, sample_rate=cfg.session.sample_rate,
                       clock=RealClock())
    session, _ = make_session(reply="Order 1234 arrives tomorrow, before noon.", first_token_s=0.05, tts=tts)
    holder.append(session)
    written = Written(ledger)
    session.add_observer(written)
    return session, ledger, written


async def _held_audio(session: AgentSession) -> None:
    """Until the held early answer has synthesized its first audio (polled: a held runner reports nothing)."""
    conv = session._conversation
    assert conv is not None and conv._early is not None
    for _ in range(3000):
        if "tts_first_audio" in conv._early.runner._early_marks:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the held early answer synthesized nothing in 60 s")


async def _check(session: AgentSession, ledger: AudioLedger, written: Written) -> int:
    """The newest turn's lost samples, once its speech played out and the sink wrote a pipeline more."""
    await session.wait_idle(timeout=90)
    n = written.chunks
    for _ in range(3000):
        if written.chunks >= n + 12:
            break
        await asyncio.sleep(0.02)
    lost = ledger.turn_done(session.turn_count, interrupted=False)
    assert lost is not None
    return lost


async def test_a_held_answer_is_booked_to_the_turn_that_adopts_it() -> None:
    session, ledger, written = _session()
    async with session:
        now = session.clock.now
        booked_before = {t: len(c) for t, c in ledger.pending.items()}  # the start-up rehearsal's, if any
        session._emit(UserSpeechStarted(now()))
        session._prefill("where is order 1234")
        await _held_audio(session)
        await asyncio.sleep(0.3)
        # held: synthesized, but taken by no turn yet
        assert {t: len(c) for t, c in ledger.pending.items()} == booked_before
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("where is order 1234", t_end=now(), t_final=now()))
        assert await _check(session, ledger, written) == 0, ledger.lossy_turns
        assert session.metrics.early_answers["adopted"] == 1
        compared = ledger.checked
        assert compared > 0.5 * session.builder.sample_rate  # the whole answer (> 0.5 s of speech) was compared

        # an early answer the user talks on over is cancelled; the whole question is answered afresh
        session._emit(UserSpeechStarted(now()))
        session._prefill("my order number is")
        await _held_audio(session)
        session._emit(UserSpeechStarted(now()))
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("my order number is 1234", t_end=now(), t_final=now()))
        assert await _check(session, ledger, written) == 0, ledger.lossy_turns
        assert session.metrics.early_answers["cancelled"] == 1
        assert ledger.checked > compared
    assert session.turn_count == 2 and ledger.turns_checked == 2 and ledger.lost == 0
    # the cancelled answer's audio was booked to no turn (turns 1 and 2 are checked: nothing of theirs left)
    assert not set(ledger.pending) - set(booked_before)


def test_a_turn_whose_tail_is_still_on_its_way_is_asked_again() -> None:
    """A writer behind the session (a sink's own queue after a reconnection can hold seconds): while the
    written stream ends inside the turn's audio, a check that is not final answers None and keeps the
    turn; once the tail is written it finds every sample; a final check counts what never came."""
    rate = 24000
    rng = np.random.default_rng(3)
    speech = [(rng.standard_normal(1920) * 3000).astype(np.int16) for _ in range(4)]
    ledger = AudioLedger(rate, lambda: 1)
    for c in speech:
        ledger.synthesized(AudioChunk(samples=c, sample_rate=rate))
    silence = np.zeros(960, np.int16)
    ledger.written(silence, rate)
    for c in speech[:3]:
        ledger.written(c, rate)
    ledger.written(speech[3][:700], rate)  # the last chunk only begun
    assert ledger.turn_done(1, interrupted=False, final=False) is None
    assert 1 in ledger.pending and ledger.lost == 0
    ledger.written(speech[3][700:], rate)
    assert ledger.turn_done(1, interrupted=False, final=False) == 0
    assert 1 not in ledger.pending and ledger.turns_checked == 1
    # a final check does not wait: the part never written is lost
    for c in speech:
        ledger.synthesized(AudioChunk(samples=c, sample_rate=rate))
    for c in speech[:2]:
        ledger.written(c, rate)
    assert ledger.turn_done(1, interrupted=False, final=False) is None
    assert ledger.turn_done(1, interrupted=False) == 2 * 1920
