"""The turn runner's speech handling that needs no engine."""

from __future__ import annotations

import numpy as np

from agent.frames import AudioChunk, PhonemeTiming, SpeechChunk, WordTiming
from agent.turn_runner import trim_lead


def test_trim_lead_cuts_the_engine_lead_in_and_moves_the_timings() -> None:
    rate = 1000
    pcm = np.concatenate([np.zeros(60, np.int16), np.full(100, 5000, np.int16)])
    speech = SpeechChunk(
        AudioChunk(pcm, rate), "hi",
        phonemes=(PhonemeTiming("_", 0.0, 0.055), PhonemeTiming("h", 0.055, 0.05), PhonemeTiming("i", 0.105, 0.055)),
        words=(WordTiming("hi", 0.045, 0.115),),
    )
    out = trim_lead(speech)
    assert len(out.audio.samples) == 110 and int(out.audio.samples[10]) == 5000  # 10 ms kept before the word
    assert [(p.phoneme, round(p.start, 3), round(p.duration, 3)) for p in out.phonemes] == [
        ("_", 0.0, 0.005), ("h", 0.005, 0.05), ("i", 0.055, 0.055)]
    assert [(w.start, round(w.duration, 3)) for w in out.words] == [(0.0, 0.11)]
    assert trim_lead(out) == out  # nothing more to cut
