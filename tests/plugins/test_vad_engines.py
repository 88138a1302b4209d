"""Silero VAD (the ONNX model shipped in faster-whisper) on real piper and espeak speech with silences
and background noise: onset (barge-in) and end-of-turn times within tolerance, utterance audio,
endpointing options. (WebRTC VAD has its own tests in test_vad_webrtc.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import ConfigError
from plugins.vad_silero import SileroVAD, SileroVADConfig
from tests.fixtures.speech import RATE, feed_vad, speech, with_silences

Q1 = "Hello, I would like to check the status of my order."
Q2 = "Can you tell me when it will arrive?"


def make(kind: str, **cfg: object) -> SileroVAD:
    assert kind == "silero"
    return SileroVAD(SileroVADConfig(**cfg), sample_rate=RATE)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["silero"])
@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_onsets_and_ends_follow_the_speech(kind: str, voice: str) -> None:
    end_ms, min_ms = 500, 120
    pcm, spans = with_silences([1.0, speech(voice, Q1), 1.5, speech(voice, Q2), 1.2], noise=40.0)
    vad = make(kind, end_silence_ms=end_ms, min_speech_ms=min_ms)
    events = await feed_vad(vad, pcm)
    assert [e.speaking for e in events] == [True, False, True, False], events
    for (start, end), on, off in zip(spans, events[0::2], events[1::2], strict=True):
        # onset: after min speech, within 0.35 s of the true start (the barge-in trigger)
        assert start + min_ms / 1000 - 0.05 <= on.t <= start + 0.35 + min_ms / 1000, (on.t, start)
        # end of turn: after the configured trailing silence, within 0.35 s of it
        assert end + end_ms / 1000 - 0.1 <= off.t <= end + end_ms / 1000 + 0.35, (off.t, end)
        assert off.audio is not None and off.audio.sample_rate == RATE
        assert abs(off.audio.duration - (off.t - on.t) - 0.2) < 0.5  # utterance = speech + pre-roll + tail


@pytest.mark.parametrize("kind", ["silero"])
async def test_short_pauses_inside_a_turn_do_not_end_it(kind: str) -> None:
    pcm, _ = with_silences([0.5, speech("piper", Q1), 0.3, speech("piper", Q2), 1.0])
    events = await feed_vad(make(kind, end_silence_ms=700), pcm)
    assert [e.speaking for e in events] == [True, False]
    # and a shorter end_silence splits the same audio into two turns
    events = await feed_vad(make(kind, end_silence_ms=150), pcm)
    assert [e.speaking for e in events].count(False) >= 2


@pytest.mark.parametrize("kind", ["silero"])
async def test_silence_and_noise_give_no_events(kind: str) -> None:
    pcm, _ = with_silences([3.0], noise=60.0)
    assert await feed_vad(make(kind), pcm) == []


async def test_reset_forgets_a_turn_in_progress() -> None:
    vad = make("silero")
    pcm, _ = with_silences([0.3, speech("piper", Q1)])
    events = await feed_vad(vad, pcm)
    assert [e.speaking for e in events] == [True]
    vad.reset()
    assert await feed_vad(vad, np.zeros(RATE, np.int16)) == []


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not found"):
        SileroVAD(SileroVADConfig(model_path="/nonexistent/vad.onnx"))
    with pytest.raises(ConfigError, match="16 kHz"):
        SileroVAD(sample_rate=8000)
