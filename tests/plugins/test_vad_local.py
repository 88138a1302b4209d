"""Energy VAD on real synthesized speech with silences: onset and end-of-turn times."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np

from agent.frames import AudioChunk
from plugins.input_local import read_audio_file
from plugins.vad_energy import EnergyVAD, EnergyVADConfig
from plugins.vad_silero import SileroVAD


async def test_onsets_and_ends_follow_the_speech(tmp_path: Path) -> None:
    wav = tmp_path / "s.wav"
    await asyncio.to_thread(
        subprocess.run, ["espeak-ng", "-w", str(wav), "Hello, I would like to check my order."], check=True
    )
    speech = read_audio_file(wav, 16000)
    gap = np.zeros(16000, np.float32)
    noise = np.random.default_rng(0).normal(0, 0.002, 16000 * 5).astype(np.float32)
    signal = np.concatenate([gap, speech, gap * 1.5, gap, speech, gap])
    signal[: len(noise)] += noise[: len(signal)]
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)
    vad = EnergyVAD(EnergyVADConfig(end_silence_ms=500), sample_rate=16000)
    events = []
    for i in range(0, len(pcm), 320):
        events += await vad.feed(AudioChunk(pcm[i : i + 320], 16000))
    kinds = [e.speaking for e in events]
    assert kinds == [True, False, True, False]
    dur = len(speech) / 16000
    assert abs(events[0].t - 1.0) < 0.3  # onset within min_speech of the true start
    assert 1.0 + dur < events[1].t < 1.0 + dur + 0.9  # end after trailing silence
    assert events[1].audio is not None and abs(events[1].audio.duration - dur) < 0.9


async def test_silero_onsets_and_ends_follow_the_speech(tmp_path: Path) -> None:
    wav = tmp_path / "s.wav"
    await asyncio.to_thread(
        subprocess.run, ["espeak-ng", "-w", str(wav), "Hello, I would like to check my order."], check=True
    )
    speech = read_audio_file(wav, 16000)
    gap = np.zeros(16000, np.float32)
    signal = np.concatenate([gap, speech, gap, gap, speech, gap])
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)
    vad = SileroVAD(sample_rate=16000)
    events = []
    for i in range(0, len(pcm), 320):
        events += await vad.feed(AudioChunk(pcm[i : i + 320], 16000))
    assert [e.speaking for e in events] == [True, False, True, False]
    dur = len(speech) / 16000
    assert abs(events[0].t - 1.0) < 0.35
    assert abs(events[2].t - (3.0 + dur)) < 0.35
    assert events[1].audio is not None and abs(events[1].audio.duration - dur) < 1.0


async def test_the_barge_in_trigger_is_fast_and_ignores_short_bursts() -> None:
    """The onset event is what interrupts a speaking agent: it comes ~min_speech_ms (120 ms) after the
    voice starts, and a 60 ms burst (a click, a cough, a door) over the noise floor gives none."""
    from tests.fixtures.speech import RATE, feed_vad, speech, with_silences

    burst = (np.random.default_rng(1).normal(0, 3000, int(0.06 * RATE))).astype(np.int16)
    pcm, spans = with_silences([1.0, burst, 1.0, speech("piper", "Can I change the delivery address instead?"), 1.0],
                               noise=30.0)
    events = await feed_vad(EnergyVAD(EnergyVADConfig(end_silence_ms=500), sample_rate=RATE), pcm)
    assert [e.speaking for e in events] == [True, False], events
    start = spans[1][0]  # the utterance (the burst is the first span)
    assert 0.1 <= events[0].t - start <= 0.17, (events[0].t, start)
    # the burst is loud enough to count: only the 120 ms run keeps it from interrupting
    touchy = await feed_vad(EnergyVAD(EnergyVADConfig(end_silence_ms=500, min_speech_ms=40), sample_rate=RATE), pcm)
    assert [e.speaking for e in touchy][:2] == [True, False] and touchy[0].t < spans[0][1] + 0.05, touchy
