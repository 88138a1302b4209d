"""The first word survives the VAD's cut: the spoken user's voice (piper, as `spoken_script` speaks)
-> Silero VAD with its default pre-roll -> tiny.en, for the end of turn's audio and the early-ASR
pause's. Before the pre-roll counted from the onset's first voiced window, tiny.en heard
"I played football yesterday" as "plate football yesterday" 8 times in 10."""

from __future__ import annotations

import re

import numpy as np
import pytest

from agent.frames import AudioChunk, VadEvent
from flowact.audio import float_to_int16, int16_to_float, resample
from plugins.asr_faster_whisper import FasterWhisperASR
from plugins.tts_piper import PiperTTS, PiperTTSConfig
from plugins.vad_silero import SileroVAD, SileroVADConfig

RATE = 16000
LINES = ["I played football yesterday.", "I don't know."]
pytestmark = pytest.mark.timeout(300)


async def said(tts: PiperTTS, text: str) -> np.ndarray:
    parts = [resample(int16_to_float(s.audio.samples), s.audio.sample_rate, RATE) async for s in tts.synthesize(text)]
    return float_to_int16(np.concatenate(parts))


async def cut(vad: SileroVAD, speech: np.ndarray) -> list[VadEvent]:
    pcm = np.concatenate([np.zeros(RATE, np.int16), speech, np.zeros(RATE, np.int16)])
    events: list[VadEvent] = []
    for i in range(0, len(pcm), 320):  # 20 ms blocks, like a microphone
        events += await vad.feed(AudioChunk(pcm[i : i + 320], RATE, pts=i / RATE))
    return [e for e in events if e.audio is not None]


async def test_the_first_word_is_transcribed_from_the_vad_cut() -> None:
    tts = PiperTTS(PiperTTSConfig(length_scale=1.1), sample_rate=RATE)  # random: each take differs
    vad = SileroVAD(SileroVADConfig(end_of_turn={"early_asr_ms": 60}), sample_rate=RATE)
    asr = FasterWhisperASR()
    heard: list[str] = []
    for text in LINES:
        for _ in range(3):
            speech = await said(tts, text)
            onset = 1.0 + int(np.argmax(np.abs(speech) > 300)) / RATE  # the voice's first loud sample
            vad.reset()
            events = await cut(vad, speech)
            assert events and events[0].pause and not events[-1].speaking, events  # early pause, then the end
            for ev in (events[0], events[-1]):
                assert ev.audio is not None and ev.audio.pts <= onset - 0.1  # from before the voice
                final = [t async for t in asr.transcribe(ev.audio) if t.final][0]
                heard.append(final.text)
    print(heard)
    assert all(re.match(r"\W*I\b", h) for h in heard), heard
    await asr.aclose()
    await tts.aclose()
    await vad.aclose()
