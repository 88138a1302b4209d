"""The offline engines, for real: espeak-ng and piper TTS, faster-whisper tiny.en, and the openai
plugin against a local llama.cpp server (streaming, cancellation, the server dying mid-stream)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from agent.errors import EngineError
from agent.frames import TextDelta
from agent.interfaces import ChatMessage
from plugins.asr_faster_whisper import FasterWhisperASR
from plugins.llm_openai import LocalServerConfig, OpenAILLM, OpenAILLMConfig
from plugins.tts_espeak import EspeakTTS
from plugins.tts_piper import PiperTTS

SENTENCE = "Your order shipped on Monday and arrives tomorrow morning."


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def synth(tts: EspeakTTS | PiperTTS, text: str):  # type: ignore[no-untyped-def]
    return [s async for s in tts.synthesize(text)]


@pytest.mark.parametrize("engine", ["espeak", "piper"])
async def test_tts_timings_cover_the_audio_and_asr_understands_it(engine: str) -> None:
    tts = EspeakTTS(sample_rate=16000) if engine == "espeak" else PiperTTS(sample_rate=16000)
    chunks = await synth(tts, SENTENCE)
    assert chunks
    audio = np.concatenate([c.audio.samples for c in chunks])
    dur = len(audio) / 16000
    assert 1.5 < dur < 8
    ph = [p for c in chunks for p in c.phonemes]
    assert len(ph) > 20
    starts = [p.start for p in ph]
    assert starts == sorted(starts) and ph[-1].start + ph[-1].duration == pytest.approx(dur, abs=0.25)
    asr = FasterWhisperASR()
    from agent.frames import AudioChunk

    finals = [t async for t in asr.transcribe(AudioChunk(audio, 16000)) if t.final]
    assert len(finals) == 1
    overlap = len(words(finals[0].text) & words(SENTENCE)) / len(words(SENTENCE))
    assert overlap >= 0.7, finals[0].text


async def test_asr_gives_partials_for_long_utterances() -> None:
    tts = PiperTTS(sample_rate=16000)
    text = " ".join([SENTENCE] * 3)
    audio = np.concatenate([c.audio.samples for c in await synth(tts, text)])
    from agent.frames import AudioChunk

    asr = FasterWhisperASR(FasterWhisperASR.Config(partial_every_s=3.0))
    out = [t async for t in asr.transcribe(AudioChunk(audio, 16000))]
    assert [t.final for t in out][-1] is True and any(not t.final for t in out)
    assert len(out[-1].text) > len(out[0].text)


@pytest.fixture(scope="module")
def llm_config() -> OpenAILLMConfig:
    return OpenAILLMConfig(local_server=LocalServerConfig(), max_tokens=40, temperature=0.0)


async def test_llm_streams_from_a_real_local_server(llm_config: OpenAILLMConfig) -> None:
    llm = OpenAILLM(llm_config)
    await llm.start()
    try:
        assert llm.server is not None and llm.server.base_url.startswith("http://127.0.0.1:")
        msgs = [ChatMessage("system", "You are a helpful assistant."),
                ChatMessage("user", "Describe a sunny day at the beach in two sentences.")]
        deltas = [d async for d in llm.chat(msgs)]
        text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert len(deltas) > 5 and len(words(text)) >= 5, text  # streamed in pieces, real words
        # cancellation mid-stream closes the HTTP stream at once
        stream: AsyncIterator[object] = llm.chat(msgs).__aiter__()
        await stream.__anext__()
        t0 = time.monotonic()
        await stream.aclose()  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < 1.0
        again = [d async for d in llm.chat(msgs)]  # the server is still usable
        assert again
    finally:
        await llm.aclose()
    assert llm.server.proc is None


async def test_llm_server_killed_mid_stream_gives_a_clear_error(llm_config: OpenAILLMConfig) -> None:
    cfg = llm_config.model_copy(update={"max_tokens": 200, "retries": 1, "timeout_s": 5.0})
    llm = OpenAILLM(cfg)
    await llm.start()
    try:
        assert llm.server is not None and llm.server.proc is not None
        msgs = [ChatMessage("user", "Count from one to one hundred in words.")]
        got = 0
        with pytest.raises(EngineError) as e:
            async for _ in llm.chat(msgs):
                got += 1
                if got == 3:
                    llm.server.proc.kill()
        assert got >= 3
        assert e.value.retryable  # a connection failure; retried only before the first token
        # a new call against the dead server fails fast and clearly, after its retries
        t0 = time.monotonic()
        with pytest.raises(EngineError, match="openai"):
            async for _ in llm.chat(msgs):
                pass
        assert time.monotonic() - t0 < 15
    finally:
        await llm.aclose()


async def test_missing_model_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agent.errors import ConfigError

    llm = OpenAILLM(OpenAILLMConfig(local_server=LocalServerConfig(model_path=str(tmp_path / "none.gguf"))))
    with pytest.raises(ConfigError, match="not found"):
        await llm.start()
    await llm.aclose()


async def test_espeak_is_fast_enough_for_sentences() -> None:
    tts = EspeakTTS()
    t0 = time.perf_counter()
    chunks = await synth(tts, SENTENCE)
    assert time.perf_counter() - t0 < 5.0 and chunks[0].audio.sample_rate == 24000
    await asyncio.sleep(0)
