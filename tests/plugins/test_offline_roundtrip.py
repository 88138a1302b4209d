"""One offline round trip through the real engines, no mocks:

spoken question (piper) -> Silero VAD (end of turn; WebRTC VAD must agree) -> faster-whisper tiny.en -> openai plugin on
the local llama.cpp server (shipped Qwen2.5 0.5B) -> piper TTS -> transcribed back by tiny.en.
The answer's words must come back from its own audio.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from agent.frames import AudioChunk, TextDelta, VadEvent
from agent.intents import IntentParser
from agent.interfaces import ChatMessage
from plugins.asr_faster_whisper import FasterWhisperASR
from plugins.llm_openai import LocalServerConfig, OpenAILLM, OpenAILLMConfig
from plugins.tts_piper import PiperTTS
from plugins.vad_silero import SileroVAD
from plugins.vad_webrtc import WebrtcVAD

RATE = 16000
QUESTION = "What is the capital of France?"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


async def speak(tts: PiperTTS, text: str) -> np.ndarray:
    return np.concatenate([c.audio.samples async for c in tts.synthesize(text)])


async def final_text(asr: FasterWhisperASR, pcm: np.ndarray) -> str:
    return [t async for t in asr.transcribe(AudioChunk(pcm, RATE)) if t.final][-1].text


@pytest.mark.timeout(120)
async def test_spoken_question_to_spoken_answer_and_back() -> None:
    tts = PiperTTS(sample_rate=RATE)
    asr = FasterWhisperASR()
    vad = SileroVAD(sample_rate=RATE)
    llm = OpenAILLM(OpenAILLMConfig(local_server=LocalServerConfig(), max_tokens=40, temperature=0.0,
                                     first_token_timeout_s=45.0))  # 2 shared cores: prompt eval can be slow
    await llm.start()  # starts the server first: it loads while piper and whisper work
    try:
        # 1. the user's question as a 20 ms microphone stream with silence around it
        question = await speak(tts, QUESTION)
        silence = np.zeros(RATE, np.int16)
        mic = np.concatenate([silence, question, silence])
        events: list[VadEvent] = []
        for i in range(0, len(mic), 320):
            events += await vad.feed(AudioChunk(mic[i : i + 320], RATE, pts=i / RATE))
        assert [e.speaking for e in events] == [True, False]
        utterance = events[1].audio
        assert utterance is not None and abs(utterance.duration - len(question) / RATE) < 1.0
        # the lighter WebRTC VAD finds the same single turn in the same stream
        light = WebrtcVAD(sample_rate=RATE)
        edges = [e for i in range(0, len(mic), 320) for e in await light.feed(AudioChunk(mic[i : i + 320], RATE))]
        assert [e.speaking for e in edges] == [True, False] and abs(edges[0].t - events[0].t) < 0.3

        # 2. ASR of the VAD segment
        heard = await final_text(asr, utterance.samples)
        assert {"capital", "france"} <= set(words(heard)), heard

        # 3. the LLM answers through the openai client, streamed; intent tags stripped as the session does
        msgs = [ChatMessage("system", "You are a geography tutor. Answer with one complete sentence."),
                ChatMessage("user", "What is the capital of Italy?"),  # one example turn sets the form
                ChatMessage("assistant", "The capital of Italy is Rome."),
                ChatMessage("user", heard)]
        parser = IntentParser()
        deltas = 0
        answer = ""
        async for d in llm.chat(msgs):
            if isinstance(d, TextDelta):
                deltas += 1
                answer += parser.feed(d.text)[0]
        assert deltas > 2, f"the answer must arrive streamed ({deltas} deltas: {answer!r})"
        assert "paris" in words(answer), answer

        # 4. the answer is spoken and transcribed back: its words return
        spoken = await speak(tts, answer)
        assert len(spoken) / RATE > 0.8
        back = await final_text(asr, spoken)
        said = set(words(answer))
        overlap = len(said & set(words(back))) / len(said)
        assert "paris" in words(back) and overlap >= 0.6, (answer, back)
    finally:
        await llm.aclose()
        await tts.aclose()
        await asr.aclose()
