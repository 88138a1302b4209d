"""WebRTC VAD on real synthesized speech (espeak-ng) with silences, pauses and background noise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError, InputError
from agent.frames import AudioChunk, VadEvent
from agent.registry import load_plugin
from plugins.input_local import read_audio_file
from plugins.vad_webrtc import WebrtcVAD, WebrtcVADConfig

RATE = 16000


def espeak(tmp_path: Path, text: str) -> np.ndarray:
    wav = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
    return read_audio_file(wav, RATE)


async def run(vad: WebrtcVAD, signal: np.ndarray, step: int = 320) -> list[VadEvent]:
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)
    events: list[VadEvent] = []
    for i in range(0, len(pcm), step):  # odd-sized mic chunks: frames are re-cut inside
        events += await vad.feed(AudioChunk(pcm[i : i + step], RATE))
    return events


async def test_onsets_and_ends_follow_the_speech_in_noise(tmp_path: Path) -> None:
    speech = espeak(tmp_path, "Hello, I would like to check my order.")
    dur = len(speech) / RATE
    gap = np.zeros(RATE, np.float32)
    signal = np.concatenate([gap, speech, gap, gap, speech, gap])
    signal += np.random.default_rng(0).normal(0, 0.003, len(signal)).astype(np.float32)  # room hiss
    vad = load_plugin("vad", "webrtc")(WebrtcVADConfig(aggressiveness=3, end_silence_ms=500), sample_rate=RATE)
    assert isinstance(vad, WebrtcVAD)
    events = await run(vad, signal, step=333)
    assert [e.speaking for e in events] == [True, False, True, False]
    assert abs(events[0].t - 1.0) < 0.35  # onset within min_speech (+smoothing) of the true start
    assert 1.0 + dur < events[1].t < 1.0 + dur + 1.0  # end of turn after the trailing silence
    assert abs(events[2].t - (3.0 + dur)) < 0.35
    assert events[1].audio is not None and abs(events[1].audio.duration - dur) < 1.0
    # the utterance carries the speech itself (pre-roll included), not the silence around it
    utt = events[1].audio.as_float()
    assert np.sqrt(np.mean(utt**2)) > 3 * np.sqrt(np.mean(signal[: RATE // 2] ** 2))


async def test_short_pause_inside_a_sentence_does_not_end_the_turn(tmp_path: Path) -> None:
    a = espeak(tmp_path, "Let me think")
    b = espeak(tmp_path, "about that for a moment.")
    gap = np.zeros(RATE, np.float32)
    pause = np.zeros(int(0.3 * RATE), np.float32)
    events = await run(WebrtcVAD(WebrtcVADConfig(end_silence_ms=700), sample_rate=RATE),
                       np.concatenate([gap, a, pause, b, gap]))
    assert [e.speaking for e in events] == [True, False]
    assert events[1].audio is not None and events[1].audio.duration > (len(a) + len(b)) / RATE


async def test_noise_and_silence_alone_give_no_events() -> None:
    rng = np.random.default_rng(1)
    signal = np.concatenate([np.zeros(RATE, np.float32), rng.normal(0, 0.003, 3 * RATE).astype(np.float32)])
    assert await run(WebrtcVAD(WebrtcVADConfig(aggressiveness=3), sample_rate=RATE), signal) == []


async def test_bad_config_and_input_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="10, 20 or 30"):
        WebrtcVADConfig(frame_ms=25)
    with pytest.raises(ConfigError, match="input rate"):
        WebrtcVAD(sample_rate=22050)
    vad = WebrtcVAD(WebrtcVADConfig(frame_ms=30), sample_rate=48000)
    assert vad.frame == 1440
    with pytest.raises(InputError, match="48000 Hz"):
        await vad.feed(AudioChunk(np.zeros(160, np.int16), 16000))


@pytest.mark.parametrize("voice", ["piper", "espeak"])
async def test_turns_in_two_voices_match_the_true_speech_spans(voice: str) -> None:
    from tests.fixtures.speech import feed_vad, speech, with_silences

    q1, q2 = speech(voice, "Hello, I would like to check my order."), speech(voice, "When will it arrive?")
    pcm, spans = with_silences([1.0, q1, 1.5, q2, 1.2], noise=40.0)  # trimmed: spans are the true voice
    events = await feed_vad(WebrtcVAD(WebrtcVADConfig(end_silence_ms=500, min_speech_ms=120), sample_rate=RATE), pcm)
    assert [e.speaking for e in events] == [True, False, True, False], events
    for (start, end), on, off in ((spans[0], events[0], events[1]), (spans[1], events[2], events[3])):
        assert start < on.t < start + 0.35  # onset: min_speech + smoothing after the first voiced frame
        assert end + 0.4 < off.t < end + 0.9  # end of turn: ~end_silence after the last voiced frame
        assert off.audio is not None and off.audio.pts <= start + 0.05  # pre-roll keeps the first syllable
