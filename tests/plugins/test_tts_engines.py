"""piper and espeak-ng TTS through their plugins: audio at the session rate, phoneme timings that
cover the audio and line up with its energy, espeak word timings, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.frames import SpeechChunk
from plugins.tts_espeak import EspeakTTS, EspeakTTSConfig
from plugins.tts_piper import PiperTTS, PiperTTSConfig

TEXT = "Good morning. Your package will arrive tomorrow."


async def synth(tts: PiperTTS | EspeakTTS, text: str = TEXT) -> list[SpeechChunk]:
    return [c async for c in tts.synthesize(text)]


def voiced_fraction(pcm: np.ndarray, rate: int, spans: list[tuple[float, float]]) -> float:
    """Share of the audio's energy that falls inside the given time spans."""
    e = pcm.astype(np.float64) ** 2
    inside = sum(e[int(a * rate) : int(b * rate)].sum() for a, b in spans)
    return float(inside / max(e.sum(), 1e-9))


@pytest.mark.parametrize("engine", ["piper", "espeak"])
@pytest.mark.parametrize("rate", [16000, 24000, 48000])
async def test_audio_at_the_session_rate_with_phonemes_covering_it(engine: str, rate: int) -> None:
    tts = PiperTTS(sample_rate=rate) if engine == "piper" else EspeakTTS(sample_rate=rate)
    chunks = await synth(tts)
    assert chunks and all(c.audio.sample_rate == rate for c in chunks)
    for c in chunks:
        dur = c.audio.duration
        ph = c.phonemes
        assert len(ph) >= 5 and ph[0].start < 0.4
        assert all(b.start >= a.start for a, b in zip(ph, ph[1:], strict=False))
        assert all(p.duration >= 0 and p.start + p.duration <= dur + 0.05 for p in ph)
        assert ph[-1].start + ph[-1].duration == pytest.approx(dur, abs=0.3)
        # the phoneme spans (without pauses) hold most of the audio's energy
        spans = [(p.start, p.start + p.duration) for p in ph if p.phoneme.strip() not in ("", "_", "^", "$", " ")]
        assert voiced_fraction(c.audio.samples, rate, spans) > 0.9
    total = sum(c.audio.duration for c in chunks)
    assert 1.5 < total < 6 and tts.stats.audio_out_s == pytest.approx(total)
    await tts.aclose()


async def test_espeak_words_match_the_text_in_order() -> None:
    (chunk,) = await synth(EspeakTTS(sample_rate=24000))
    ws = chunk.words
    assert [w.word.strip(".,").lower() for w in ws] == ["good", "morning", "your", "package", "will", "arrive",
                                                       "tomorrow"]
    assert all(TEXT[w.char_offset : w.char_offset + len(w.word)] == w.word for w in ws)
    assert all(b.start > a.start for a, b in zip(ws, ws[1:], strict=False))


async def test_slower_speech_is_longer() -> None:
    fast = sum(c.audio.duration for c in await synth(EspeakTTS(EspeakTTSConfig(rate_wpm=220))))
    slow = sum(c.audio.duration for c in await synth(EspeakTTS(EspeakTTSConfig(rate_wpm=120))))
    assert slow > 1.4 * fast
    # piper draws its phoneme durations with noise (and pads each sentence), so a nominal x2.29 reads
    # x1.86-1.93 over runs; x1.75 read x1.40-1.50, too close to the bound to tell apart from noise
    p_fast = sum(c.audio.duration for c in await synth(PiperTTS(PiperTTSConfig(length_scale=0.7))))
    p_slow = sum(c.audio.duration for c in await synth(PiperTTS(PiperTTSConfig(length_scale=1.6))))
    assert p_slow > 1.5 * p_fast


async def test_empty_text_gives_nothing_and_bad_voices_are_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert await synth(PiperTTS(), "  ") == []
    with pytest.raises(ConfigError, match="not found"):
        PiperTTS(PiperTTSConfig(voice=str(tmp_path / "none.onnx")))
    with pytest.raises(ConfigError, match="no voice"):
        EspeakTTS(EspeakTTSConfig(voice="xx-nonexistent"))


async def test_piper_runs_on_the_configured_threads_with_its_alignments() -> None:
    """`threads` bounds one synthesis's onnxruntime threads (the renderer and LLM share the cores);
    the phoneme alignments the visemes need are still there."""
    tts = PiperTTS(PiperTTSConfig(threads=1))
    voice = tts._load()
    assert voice.session.get_session_options().intra_op_num_threads == 1
    assert len(voice.session.get_outputs()) == 2  # audio and phoneme alignments
    chunks = await synth(tts, "Order 1234 left the depot.")
    assert chunks and len(chunks[0].phonemes) > 10
    await tts.aclose()


async def test_piper_gives_a_long_sentence_memory_back() -> None:
    """onnxruntime's arena kept the longest sentence's memory for good (RSS rose in steps over a long
    session); piper's session runs without it."""
    from agent.memory import malloc_stats

    if not malloc_stats():
        pytest.skip("glibc's mallinfo2 only")
    tts = PiperTTS(sample_rate=24000)
    await synth(tts, "Hello there.")
    before = malloc_stats()["malloc_used_mb"]
    await synth(tts, " ".join(["the quick brown fox jumps over the lazy dog"] * 10) + ".")
    grown = malloc_stats()["malloc_used_mb"] - before
    assert grown < 64, f"{grown:.0f} MB still in use after a 90-word sentence"  # with the arena: 1074 MB
