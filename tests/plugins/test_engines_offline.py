"""The offline engines together, for real: espeak-ng and piper speech understood by faster-whisper
tiny.en, and the openai plugin's own local llama.cpp server (start on a free port, stream, the server
dying mid-stream, stop). Streaming/tool/cancel tests on a shared server: test_llm_openai.py."""

from __future__ import annotations

import re

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


@pytest.fixture(scope="module")
def llm_config() -> OpenAILLMConfig:
    return OpenAILLMConfig(local_server=LocalServerConfig(), max_tokens=200, temperature=0.0, retries=1,
                           timeout_s=5.0, first_token_timeout_s=120.0)


async def test_local_server_lifecycle_and_killed_mid_stream(llm_config: OpenAILLMConfig) -> None:
    """The plugin starts llama.cpp on a free loopback port, streams from it, and when the server dies
    mid-answer the stream ends with a clear retryable EngineError (not a hang, not a repeat); the next
    call starts the server again."""
    llm = OpenAILLM(llm_config)
    await llm.start()
    try:
        assert llm.server is not None and llm.server.proc is not None
        assert llm.server.base_url.startswith("http://127.0.0.1:")
        msgs = [ChatMessage("user", "Count from one to one hundred in words.")]
        got: list[str] = []
        with pytest.raises(EngineError) as e:
            async for d in llm.chat(msgs):
                assert isinstance(d, TextDelta)
                got.append(d.text)
                if len(got) == 3:
                    llm.server.proc.kill()
        assert len(got) >= 3 and len(words("".join(got))) >= 1
        assert e.value.retryable and llm.stats.retries == 0  # never retried once text reached the caller
        # the next call restarts the dead server (same port) and is answered: the agent never goes deaf
        dead = llm.server.proc
        said = [d.text async for d in llm.chat([ChatMessage("user", "Say hello.")]) if isinstance(d, TextDelta)]
        assert words("".join(said)), said
        assert llm.server.proc is not None and llm.server.proc is not dead and llm.server.proc.returncode is None
    finally:
        await llm.aclose()
    assert llm.server.proc is None


async def test_missing_model_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agent.errors import ConfigError

    llm = OpenAILLM(OpenAILLMConfig(local_server=LocalServerConfig(model_path=str(tmp_path / "none.gguf"))))
    with pytest.raises(ConfigError, match="not found"):
        await llm.start()
    await llm.aclose()
