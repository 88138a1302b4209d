"""Every VAD's end-of-turn event carries the acoustic end of the user's speech (`last_voiced_t`, the
end of the last voiced frame, on the clock of `VadEvent.t`), measured on real piper and espeak speech."""

from __future__ import annotations

import pytest

from agent.interfaces import VAD
from plugins.vad_energy import EnergyVAD, EnergyVADConfig
from plugins.vad_silero import SileroVAD, SileroVADConfig
from plugins.vad_webrtc import WebrtcVAD, WebrtcVADConfig
from tests.fixtures.speech import RATE, feed_vad, speech, with_silences

Q1 = "Hello, I would like to check the status of my order."
Q2 = "Can you tell me when it will arrive?"


def make(kind: str) -> VAD:
    if kind == "energy":
        return EnergyVAD(EnergyVADConfig(end_silence_ms=500), sample_rate=RATE)
    if kind == "webrtc":
        return WebrtcVAD(WebrtcVADConfig(end_silence_ms=500), sample_rate=RATE)
    return SileroVAD(SileroVADConfig(end_silence_ms=500), sample_rate=RATE)


@pytest.mark.parametrize("kind", ["energy", "webrtc", "silero"])
@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_end_event_carries_the_last_voiced_time(kind: str, voice: str) -> None:
    pcm, spans = with_silences([0.8, speech(voice, Q1), 1.2, speech(voice, Q2), 1.0], noise=30.0)
    events = await feed_vad(make(kind), pcm)
    ends = [e for e in events if not e.speaking]
    assert len(ends) == 2, events
    for (_, true_end), ev in zip(spans, ends, strict=True):
        assert ev.last_voiced_t is not None
        print(f"{kind} {voice}: last_voiced_t - true end = {(ev.last_voiced_t - true_end) * 1000:+.0f} ms")
        assert abs(ev.last_voiced_t - true_end) < 0.1, (ev.last_voiced_t, true_end)
        assert ev.last_voiced_t <= ev.t
