"""Early transcription: the ASR starts at the user's pause, overlapping the end-of-turn wait, and is
dropped when the user goes on. Real Silero VAD and faster-whisper on piper speech, fed in real time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from agent.events import SessionEvent, UserMessage, UserSpeechEnded
from agent.fanout import Fanout, TaskOwner
from agent.frames import AudioChunk, VadEvent
from agent.listening import Listener
from agent.metrics import SessionMetrics
from agent.tool_router import normalize_spoken_numbers
from flowact.clock import RealClock
from plugins.asr_faster_whisper import FasterWhisperASR
from plugins.turn_smart import EndOfTurnConfig
from plugins.vad_silero import SileroVAD, SileroVADConfig
from tests.fixtures.speech import RATE, speech, with_silences

pytestmark = pytest.mark.timeout(120)


class CountingASR(FasterWhisperASR):
    """The real tiny.en model, noting when each transcription starts and how much audio it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[float, float]] = []  # (monotonic start, seconds of audio)

    def _run(self, pcm: np.ndarray) -> str:
        self.calls.append((time.monotonic(), len(pcm) / self.sample_rate))
        return super()._run(pcm)


class Mic:
    """PCM played in 20 ms chunks at real-time pace."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm

    async def audio(self) -> AsyncIterator[AudioChunk]:
        clock = RealClock()
        t0 = clock.now()
        step = RATE // 50
        for k, i in enumerate(range(0, len(self.pcm), step)):
            await clock.sleep_until(t0 + k * step / RATE)
            yield AudioChunk(np.ascontiguousarray(self.pcm[i : i + step]), RATE, pts=i / RATE)


async def listen(pcm: np.ndarray, asr: CountingASR) -> tuple[list[SessionEvent], list[float], Listener]:
    """Play `pcm` through Silero (silence end of turn, early ASR at 150 ms) into a Listener."""
    clock = RealClock()
    events: list[SessionEvent] = []
    ended: list[float] = []  # monotonic time of each end of turn

    def emit(event: SessionEvent) -> None:
        events.append(event)
        if isinstance(event, UserSpeechEnded):
            ended.append(time.monotonic())

    vad = SileroVAD(SileroVADConfig(end_silence_ms=700, end_of_turn=EndOfTurnConfig(early_asr_ms=150)))
    await asr.start()
    listener = Listener(
        emit=emit, fanout=Fanout(TaskOwner()), clock=clock, metrics=SessionMetrics(clock, fps=25),
        builder_audio=lambda _: None, vad=vad, asr=asr,
    )
    await listener.audio_loop(Mic(pcm))
    if listener.asr_task is not None:
        await listener.asr_task
    await listener.aclose()
    assert all(t.done() for t in listener.tasks)
    return events, ended, listener


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def digits(text: str) -> str:
    """The digits of `text`, numbers said as words included (Whisper writes "5678" or "five six ...")."""
    return re.sub(r"\D", "", normalize_spoken_numbers(text))


async def test_the_transcript_is_begun_at_the_pause_and_used_at_the_end_of_turn() -> None:
    pcm, _ = with_silences([0.5, speech("piper", "Where is my parcel from last week?"), 1.2])
    asr = CountingASR()
    events, ended, listener = await listen(pcm, asr)
    (message,) = [e for e in events if isinstance(e, UserMessage)]
    assert {"where", "parcel", "week"} <= words(message.text), message.text
    assert len(ended) == 1 and len(asr.calls) == 1  # one transcription: the one begun at the pause
    assert asr.calls[0][0] < ended[0]  # ... while the end of turn was still being waited for
    assert listener.metrics.early_asr == {"used": 1, "dropped": 0}


async def test_an_early_transcript_is_dropped_when_the_user_goes_on() -> None:
    pcm, _ = with_silences([
        0.5, speech("piper", "My order number is"), 0.45, speech("piper", "four five six, and it is late."), 1.2,
    ])
    asr = CountingASR()
    events, ended, listener = await listen(pcm, asr)
    (message,) = [e for e in events if isinstance(e, UserMessage)]  # one question, not two
    # both parts are in it: the words before the pause and the number after it (the tiny Whisper's
    # reading of the last words varies with where the VAD cut the audio: seen "and a Dislate")
    assert {"order", "number"} <= words(message.text) and "456" in digits(message.text), message.text
    assert len(ended) == 1
    assert listener.metrics.early_asr["dropped"] >= 1  # the transcript of the first part went
    first_part = asr.calls[0][1]
    assert first_part < max(seconds for _, seconds in asr.calls)  # the message is from the whole question


async def test_closing_cancels_an_early_transcription_in_flight() -> None:
    asr = CountingASR()
    await asr.start()
    clock = RealClock()
    listener = Listener(
        emit=lambda _: None, fanout=Fanout(TaskOwner()), clock=clock, metrics=SessionMetrics(clock, fps=25),
        builder_audio=lambda _: None, asr=asr,
    )
    audio = AudioChunk(speech("piper", "Hello there."), RATE, pts=0.0)
    listener.on_vad(VadEvent(speaking=True, t=1.0, audio=audio, last_voiced_t=0.9, pause=True))
    assert listener.early is not None and not listener.early[1].done()
    await listener.aclose()
    assert all(t.done() for t in listener.tasks) and listener.early is not None and listener.early[1].cancelled()


async def test_an_early_transcript_ready_before_the_end_of_turn_is_reported_once() -> None:
    """While the end of turn is still out (an 'incomplete' verdict), the early transcript is reported
    (the session primes the LLM with it); one the end of turn already took is not."""
    asr = CountingASR()
    await asr.start()
    clock = RealClock()
    reported: list[str] = []
    listener = Listener(
        emit=lambda _: None, fanout=Fanout(TaskOwner()), clock=clock, metrics=SessionMetrics(clock, fps=25),
        builder_audio=lambda _: None, asr=asr, on_early_text=reported.append,
    )
    audio = AudioChunk(speech("piper", "Where is my parcel?"), RATE, pts=0.0)
    listener.on_vad(VadEvent(speaking=True, t=2.0, audio=audio, last_voiced_t=1.9, pause=True))
    assert listener.early is not None
    await asyncio.wait({listener.early[1]})
    assert len(reported) == 1 and {"where", "parcel"} <= words(reported[0]), reported
    listener.on_vad(VadEvent(speaking=True, t=5.0, audio=audio, last_voiced_t=4.9, pause=True))
    listener.on_vad(VadEvent(speaking=False, t=5.5, audio=audio, last_voiced_t=4.9))  # the end takes it at once
    assert listener.asr_task is not None
    await listener.asr_task
    assert len(reported) == 1 and listener.metrics.early_asr == {"used": 1, "dropped": 1}
    await listener.aclose()


class BusyASR(CountingASR):
    """The real tiny.en on a busy box: each transcription takes at least `delay_s` longer."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def _run(self, pcm: np.ndarray) -> str:
        time.sleep(self.delay_s)
        return super()._run(pcm)


async def test_an_utterance_ending_while_the_last_is_transcribed_is_heard_with_it() -> None:
    """A turn ended at a pause ("Could you look"), the user went on ("up order five six seven eight")
    and that ended too before the first transcription did: one message with both parts' words."""
    first, then = speech("piper", "Could you look"), speech("piper", "up order five six seven eight.")
    quiet = np.zeros(RATE // 2, np.int16)
    a = AudioChunk(np.concatenate([quiet, first, quiet]), RATE, pts=1.0)
    b_pts = a.pts + len(a.samples) / RATE - 0.4  # its pre-roll reaches back into the first
    b = AudioChunk(np.concatenate([quiet[: int(0.4 * RATE)], then, quiet]), RATE, pts=b_pts)
    events: list[SessionEvent] = []
    clock = RealClock()
    asr = BusyASR(delay_s=1.0)
    await asr.start()
    listener = Listener(emit=events.append, fanout=Fanout(TaskOwner()), clock=clock,
                        metrics=SessionMetrics(clock, fps=25), builder_audio=lambda _: None, asr=asr)
    listener.on_vad(VadEvent(speaking=False, t=b_pts, audio=a, last_voiced_t=b_pts - 0.4))
    await asyncio.sleep(0.2)  # the first transcription is under way
    listener.on_vad(VadEvent(speaking=False, t=b_pts + b.duration, audio=b, last_voiced_t=b_pts + b.duration - 0.5))
    assert listener.asr_task is not None
    await listener.asr_task
    await listener.aclose()
    said = [e.text for e in events if isinstance(e, UserMessage)]
    assert len(said) == 1 and {"could", "look"} <= words(said[0]) and "5678" in digits(said[0]), said
    assert abs(asr.calls[-1][1] - (a.duration + b.duration - 0.4)) < 0.01  # the overlap was not heard twice
