"""The builder keeps real time on a fake clock for an hour of simulated conversation, with bounded
memory (tracemalloc), and paced_chunks yields each chunk exactly on its deadline."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from flowact.clock import FakeClock
from flowact.control import ControlBuilder, paced_chunks
from flowact.types import AgentState, AudioChunk, IntentTag, SpeechChunk

SR = 16000
CYCLE_S = 12.0  # one exchange: think, speak (maybe interrupted), listen


def _speeches() -> list[SpeechChunk]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        n = int((2.0 + k * 0.7) * SR)
        t = np.arange(n) / SR
        pcm = ((0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 150 * t) * 8000
               + rng.normal(0, 200, n)).astype(np.int16)
        tags = (IntentTag(["happy", "concerned", "neutral", "surprised"][k], char_offset=0),
                IntentTag("nod", char_offset=10))
        out.append(SpeechChunk(AudioChunk(pcm, SR), "sentence number one two three", tags=tags))
    return out


async def test_paced_chunks_meet_their_deadlines() -> None:
    clock = FakeClock(start=100.0)
    b = ControlBuilder(sample_rate=SR)
    k = 0
    async for chunk in paced_chunks(b, clock, start=100.5, lead_s=0.08):
        assert clock.now() == pytest.approx(100.5 + k * b.chunk_duration - 0.08)
        assert chunk.index == k
        k += 1
        if k == 50:
            break


async def test_an_hour_of_conversation_in_real_time_with_bounded_memory() -> None:
    clock = FakeClock(settle=1)
    b = ControlBuilder(sample_rate=SR, seed=1)
    speeches = _speeches()
    user = AudioChunk((np.sin(np.arange(int(0.16 * SR)) * 0.3) * 9000).astype(np.int16), SR)
    quiet = AudioChunk(np.zeros(int(0.16 * SR), np.int16), SR)
    dur = b.chunk_duration
    n_chunks = int(3600 / dur)
    per_cycle = int(round(CYCLE_S / dur))
    speaking: dict[int, int] = {}
    late = 0
    baseline = peak_growth = 0
    states: set[AgentState] = set()
    k = 0
    async for chunk in paced_chunks(b, clock, start=0.0, lead_s=0.0):
        if abs(clock.now() - k * dur) > 1e-6:
            late += 1
        assert chunk.index == k and chunk.pts == pytest.approx(k * dur)
        states.add(chunk.state)
        cycle, step = divmod(k, per_cycle)
        speaking[cycle] = speaking.get(cycle, 0) + (chunk.state == AgentState.SPEAKING)
        if step == 0:
            b.set_state(AgentState.THINKING)
        elif step == 6:
            b.push_speech(speeches[cycle % len(speeches)])
        elif step == 20 and cycle % 3 == 2:  # barge-in mid-sentence every third exchange
            b.interrupt()
        elif step == 40:
            b.set_state(AgentState.LISTENING)
        if step >= 40:
            b.push_user_audio(user if step % 20 < 12 else quiet)
        if k == int(600 / dur):  # after 10 simulated minutes of warm-up
            tracemalloc.start()
            baseline = tracemalloc.get_traced_memory()[0]
        elif k > int(600 / dur) and k % 500 == 0:
            peak_growth = max(peak_growth, tracemalloc.get_traced_memory()[0] - baseline)
        k += 1
        if k == n_chunks:
            break
    growth = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert k == n_chunks and clock.now() == pytest.approx((n_chunks - 1) * dur)
    assert late == 0
    assert states == set(AgentState)
    assert b.speech_pending_s == 0.0
    for cycle, n in speaking.items():  # every queued sample played, nothing after a barge-in
        if cycle < len(speaking) - 1:
            full = -(-len(speeches[cycle % len(speeches)].audio.samples) // b.samples_per_chunk)
            assert n == (min(full, 14) if cycle % 3 == 2 else full), cycle
    assert growth < 256 * 1024, f"memory grew by {growth} bytes over 50 simulated minutes"
    assert peak_growth < 512 * 1024
