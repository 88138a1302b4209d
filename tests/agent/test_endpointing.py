"""The shared endpointer: silence policy, the model-verdict policy (with a plain callable standing in
for the model: the real Smart Turn model is tested in tests/plugins/test_turn_smart.py), and
`last_voiced_t`, the end of the user's last voiced frame."""

from __future__ import annotations

import threading

import numpy as np

from agent.endpointing import CompletionPolicy, Endpointer
from agent.frames import VadEvent

RATE = 16000
FRAME = 160  # 10 ms


class Verdict:
    """A TurnCompletion that answers a fixed probability (or raises) and records what it saw."""

    window_s = 8.0

    def __init__(self, p: float | None, delay_s: float = 0.0) -> None:
        self.p, self.delay_s = p, delay_s
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, audio: np.ndarray, sample_rate: int) -> float:
        self.calls.append(len(audio))
        self.threads.add(threading.current_thread().name)
        threading.Event().wait(self.delay_s)
        if self.p is None:
            raise RuntimeError("model broke")
        return self.p

    def warmup(self) -> None:
        self(np.zeros(RATE, np.int16), RATE)


def frames(voiced_s: float, silent_s: float) -> list[tuple[np.ndarray, bool]]:
    on = np.full(FRAME, 3000, np.int16)
    off = np.zeros(FRAME, np.int16)
    return [(on, True)] * round(voiced_s * 100) + [(off, False)] * round(silent_s * 100)


async def run(ep: Endpointer, seq: list[tuple[np.ndarray, bool]]) -> list[VadEvent]:
    events = []
    for f, v in seq:
        ev = await ep.push(f, v)
        if ev is not None:
            events.append(ev)
    return events


def make(policy: CompletionPolicy | None = None, **kw: object) -> Endpointer:
    return Endpointer(sample_rate=RATE, frame_samples=FRAME, min_speech_ms=50, end_silence_ms=600,
                      pre_roll_ms=100, policy=policy, **kw)  # type: ignore[arg-type]


async def test_silence_policy_ends_after_end_silence_with_the_last_voiced_time() -> None:
    ep = make()
    events = await run(ep, frames(0.2, 0.3) + frames(0.5, 1.0))  # a short pause inside the turn
    assert [e.speaking for e in events] == [True, False]
    end = events[1]
    assert end.last_voiced_t is not None
    assert abs(end.last_voiced_t - 1.0) < 1e-6  # 0.2 + 0.3 + 0.5 s: the end of the last voiced frame
    assert abs(end.t - end.last_voiced_t - 0.6) < 0.011
    assert ep.last_end_reason == "silence"
    assert events[0].last_voiced_t is None


async def test_voiced_lag_is_taken_off_last_voiced_t() -> None:
    events = await run(make(voiced_lag_s=0.04), frames(0.5, 1.0))
    assert events[1].last_voiced_t is not None and abs(events[1].last_voiced_t - 0.46) < 1e-6


async def test_complete_verdict_ends_the_turn_after_the_pause() -> None:
    model = Verdict(0.9)
    ep = make(CompletionPolicy(model, pause_ms=200, max_silence_ms=2500, verdict_wait_ms=100))
    events = await run(ep, frames(0.5, 3.0))
    end = events[1]
    assert end.last_voiced_t is not None
    # fed faster than real time: the feed waits for the verdict at the latest 100 ms after the pause
    assert 0.2 <= end.t - end.last_voiced_t <= 0.31, end
    assert ep.last_end_reason == "complete" and ep.last_probability == 0.9
    assert len(model.calls) == 1 and model.calls[0] >= 0.6 * RATE  # the utterance with its pause
    assert all(name.startswith("turn-model") for name in model.threads)  # never on the event loop
    ep.close()


async def test_incomplete_verdict_waits_for_the_long_silence() -> None:
    ep = make(CompletionPolicy(Verdict(0.1), pause_ms=200, max_silence_ms=1500, verdict_wait_ms=100))
    events = await run(ep, frames(0.5, 3.0))
    end = events[1]
    assert end.last_voiced_t is not None
    assert abs(end.t - end.last_voiced_t - 1.5) < 0.011
    assert ep.last_end_reason == "incomplete" and ep.last_probability == 0.1
    ep.close()


async def test_speech_after_the_pause_drops_the_check() -> None:
    model = Verdict(0.9, delay_s=0.05)
    ep = make(CompletionPolicy(model, pause_ms=200, max_silence_ms=1500, verdict_wait_ms=1000))
    # pause of 0.25 s (check submitted at 0.2 s), the user goes on before any verdict is used
    events = await run(ep, frames(0.5, 0.25) + frames(0.5, 0.0))
    assert [e.speaking for e in events] == [True]
    events = await run(ep, frames(0.0, 2.0))
    assert [e.speaking for e in events] == [False]
    assert len(model.calls) == 2  # one check per pause
    assert events[0].audio is not None and events[0].audio.duration > 1.2  # one turn: the whole question
    ep.close()


async def test_a_failing_model_falls_back_to_plain_silence() -> None:
    ep = make(CompletionPolicy(Verdict(None), pause_ms=200, max_silence_ms=2500))
    events = await run(ep, frames(0.5, 3.0))
    end = events[1]
    assert end.last_voiced_t is not None
    assert abs(end.t - end.last_voiced_t - 0.6) < 0.011
    assert ep.last_end_reason == "model_error"
    ep.close()


async def test_warmup_and_close() -> None:
    model = Verdict(0.9)
    ep = make(CompletionPolicy(model))
    ep.warmup()
    assert model.calls == [RATE]
    ep.close()
    make().warmup()  # no model: nothing to do


async def test_a_hanging_model_delays_the_feed_once_and_the_turn_still_ends() -> None:
    model = Verdict(0.9, delay_s=1.0)  # answers long after the turn must have ended
    ep = make(CompletionPolicy(model, pause_ms=200, max_silence_ms=500, verdict_wait_ms=100))
    events = await run(ep, frames(0.5, 1.0))
    end = events[1]
    assert end.last_voiced_t is not None
    assert abs(end.t - end.last_voiced_t - 0.5) < 0.011
    assert ep.last_end_reason == "silence"  # no verdict came in time
    ep.close()


async def test_a_pause_hands_the_speech_so_far_to_early_asr_once_per_pause() -> None:
    ep = make(CompletionPolicy(Verdict(0.1), pause_ms=200, max_silence_ms=1500), early_ms=100)
    events = await run(ep, frames(0.5, 0.3) + frames(0.4, 2.0))  # goes on after a pause, then stops
    kinds = [(e.speaking, e.pause, e.resumed) for e in events]
    assert kinds == [(True, False, False), (True, True, False), (True, False, True), (True, True, False),
                     (False, False, False)]
    first, resumed, second, end = events[1:]
    assert abs(resumed.t - 0.81) < 0.011  # at the first voiced frame after the pause, not at the next pause
    assert first.audio is not None and second.audio is not None and end.audio is not None
    assert first.audio.pts == second.audio.pts == end.audio.pts  # one utterance
    assert first.last_voiced_t is not None and abs(first.t - first.last_voiced_t - 0.1) < 0.011
    assert first.last_voiced_t != end.last_voiced_t  # the user went on after the first pause
    assert second.last_voiced_t == end.last_voiced_t  # nothing voiced between the second pause and the end
    assert second.audio.duration < end.audio.duration  # the end adds only the silence
    ep.close()


async def test_no_pause_events_without_early_ms() -> None:
    events = await run(make(), frames(0.5, 0.3) + frames(0.4, 1.0))
    assert not any(e.pause or e.resumed for e in events)


async def test_a_gap_shorter_than_early_ms_is_no_pause_and_no_resume() -> None:
    """A short gap between words (a stop consonant) yields nothing; only a pause that made a pause
    event is followed by a resume event when the voice goes on."""
    ep = make(early_ms=100)
    events = await run(ep, frames(0.3, 0.05) + frames(0.3, 0.15) + frames(0.3, 1.0))
    assert [(e.speaking, e.pause, e.resumed) for e in events] == [
        (True, False, False), (True, True, False), (True, False, True), (True, True, False), (False, False, False),
    ]


async def test_the_utterance_starts_pre_roll_before_the_onsets_first_voiced_frame() -> None:
    """A soft first word the VAD scores voiced too briefly for an onset ("I" in "I don't know"), a
    short gap, then the run that makes the onset: the audio (the end's and the early pause's) reaches
    `pre_roll_ms` before that run, so the soft word is in it."""
    silent, soft = np.zeros(FRAME, np.int16), np.full(FRAME, 1000, np.int16)
    seq = [(silent, False)] * 50 + [(soft, True)] * 3 + [(silent, False)] * 6  # 0.5 s quiet, "I", a gap
    seq += frames(0.5, 1.0)
    ep = Endpointer(sample_rate=RATE, frame_samples=FRAME, min_speech_ms=50, end_silence_ms=600,
                    pre_roll_ms=100, early_ms=100)
    events = await run(ep, seq)
    assert [(e.speaking, e.pause) for e in events] == [(True, False), (True, True), (False, False)]
    run_start = 0.59  # the voiced run that made the onset
    for ev in events[1:]:
        assert ev.audio is not None
        assert abs(ev.audio.pts - (run_start - 0.1)) < 1e-6  # 100 ms before the run, not before the onset
        assert np.count_nonzero(ev.audio.samples == 1000) == 3 * FRAME  # the soft word is in
        assert len(ev.audio.samples) == round((ev.t - ev.audio.pts) * RATE)  # and nothing is missing


async def test_words_that_read_as_finished_shorten_an_incomplete_wait() -> None:
    """`words_complete()` during a pause (the early transcript read as a finished turn) ends an
    incomplete-judged turn after `text_silence_ms`, not `max_silence_ms`; a voiced frame after it
    clears it (the user went on), and a complete verdict still ends the turn at once."""
    policy = CompletionPolicy(Verdict(0.1), pause_ms=200, max_silence_ms=1500, verdict_wait_ms=100,
                              text_silence_ms=600)
    ep = make(policy)
    events = await run(ep, frames(0.5, 0.3))  # 300 ms into the pause: the early transcript is ready
    ep.words_complete()
    events += await run(ep, frames(0.0, 1.0))
    end = events[-1]
    assert end.last_voiced_t is not None and not end.speaking
    assert abs(end.t - end.last_voiced_t - 0.6) < 0.011 and ep.last_end_reason == "words_complete"
    events = await run(ep, frames(0.5, 0.3))  # the next turn: the hint, then the user goes on
    ep.words_complete()
    events += await run(ep, frames(0.3, 2.0))
    end = events[-1]
    assert end.last_voiced_t is not None and abs(end.t - end.last_voiced_t - 1.5) < 0.011
    assert ep.last_end_reason == "incomplete"
    ep.close()
    plain = make(CompletionPolicy(Verdict(0.1), pause_ms=200, max_silence_ms=1500, text_silence_ms=None))
    events = await run(plain, frames(0.5, 0.3))
    plain.words_complete()  # null text_silence_ms: the model alone decides
    events += await run(plain, frames(0.0, 2.0))
    assert plain.last_end_reason == "incomplete"
    plain.close()
