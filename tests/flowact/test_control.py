"""ControlBuilder: exact audio slices, idle/listening chunks, tag anchoring, eased expressions,
barge-in, continuity of every control parameter, and the motion it drives."""

from __future__ import annotations

import numpy as np
import pytest

from flowact.audio import frame_features, int16_to_float
from flowact.control import ControlBuilder
from flowact.motion.params import P
from flowact.motion.procedural import MAX_STEP, ProceduralMotion
from flowact.motion.visemes import V
from flowact.types import (
    EXPRESSIONS,
    N_MELS,
    VISEMES,
    AgentState,
    AudioChunk,
    ControlChunk,
    IntentTag,
    PhonemeTiming,
    SpeechChunk,
    WordTiming,
)

SR = 24000
FPS = 25
HAPPY = EXPRESSIONS.index("happy")


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    return (env * np.sin(2 * np.pi * 170 * t) * 9000 + rng.normal(0, 200, len(t))).astype(np.int16)


def speech(seconds: float, text: str = "hello there my friend", seed: int = 0, **kw) -> SpeechChunk:  # type: ignore[no-untyped-def]
    return SpeechChunk(AudioChunk(tone(seconds, seed), SR), text, **kw)


def drain(b: ControlBuilder, n: int) -> list[ControlChunk]:
    return [b.next_chunk() for _ in range(n)]


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="divide"):
        ControlBuilder(fps=30, frames_per_chunk=1, sample_rate=22050 + 1)
    with pytest.raises(ValueError):
        ControlBuilder(fps=0)
    with pytest.raises(ValueError, match="lookahead"):
        ControlBuilder(lookahead_s=1.0)


def test_idle_chunks_never_starve() -> None:
    b = ControlBuilder(sample_rate=SR)
    chunks = drain(b, 10)
    for k, c in enumerate(chunks):
        assert c.index == k and c.pts == pytest.approx(k * 0.16)
        assert c.n_frames == 4 and c.audio.shape == (3840,) and not c.audio.any()
        assert c.mel.shape == (4, N_MELS) and not c.energy.any()
        assert np.allclose(c.visemes[:, V["sil"]], 1.0)
        assert c.state == AgentState.IDLE and not c.interrupt
    assert not b.speaking and b.speech_pending_s == 0.0
    b.set_state(AgentState.LISTENING)
    assert b.next_chunk().state == AgentState.LISTENING


def test_audio_is_sliced_exactly_and_in_order() -> None:
    b = ControlBuilder(sample_rate=SR, frames_per_chunk=5)
    a, c = speech(0.77, seed=1), speech(1.013, seed=2)
    b.push_speech(a)
    b.push_speech(c)
    total = len(a.audio.samples) + len(c.audio.samples)
    assert b.speech_pending_s == pytest.approx(total / SR)
    chunks = drain(b, int(np.ceil(total / b.samples_per_chunk)) + 2)
    played = np.concatenate([ch.audio for ch in chunks])
    assert np.array_equal(played[:total], np.concatenate([a.audio.samples, c.audio.samples]))
    assert not played[total:].any()
    assert b.speech_pending_s == 0.0
    assert [ch.state for ch in chunks[-2:]] == [AgentState.IDLE] * 2
    assert all(ch.state == AgentState.SPEAKING for ch in chunks[:-3])
    # features are those of the whole signal (one frame of context each side of every chunk)
    mel, energy = frame_features(int16_to_float(played), SR, FPS)
    got_mel = np.concatenate([ch.mel for ch in chunks])
    assert np.abs(got_mel - mel).max() < 1e-3
    assert np.abs(np.concatenate([ch.energy for ch in chunks]) - energy).max() < 1e-6


def test_wrong_rate_and_back_pressure() -> None:
    b = ControlBuilder(sample_rate=SR, max_pending_s=2.0)
    with pytest.raises(ValueError, match="Hz"):
        b.push_speech(SpeechChunk(AudioChunk(np.zeros(1600, np.int16), 16000), "x"))
    b.push_speech(speech(1.5))
    with pytest.raises(ValueError, match="back-pressure"):
        b.push_speech(speech(1.0))


def event_times(chunks: list[ControlChunk], name: str) -> list[float]:
    return [c.pts + e.frame / FPS for c in chunks for e in c.events if e.name == name]


def test_tags_anchor_to_word_timings() -> None:
    text = "hello there my friend"
    words = (WordTiming("hello", 0.1, 0.3, 0), WordTiming("there", 0.5, 0.3, 6), WordTiming("my", 0.9, 0.2, 12),
             WordTiming("friend", 1.2, 0.4, 15))
    tags = (IntentTag("nod", char_offset=15), IntentTag("raise_brows", char_offset=6),
            IntentTag("wink", char_offset=len(text)))
    b = ControlBuilder(sample_rate=SR)
    b.push_speech(speech(1.8, text, words=words, tags=tags))
    chunks = drain(b, 14)
    assert event_times(chunks, "nod") == [pytest.approx(1.2, abs=1 / FPS)]
    assert event_times(chunks, "raise_brows") == [pytest.approx(0.5, abs=1 / FPS)]
    assert event_times(chunks, "wink") == [pytest.approx(1.6, abs=1 / FPS)]  # after the last word


def test_tags_anchor_to_phonemes_then_proportionally() -> None:
    text = "abcdefghij"  # the tag sits at 50% of the text
    phonemes = (PhonemeTiming("_", 0.0, 0.4), *(PhonemeTiming("a", 0.4 + 0.1 * i, 0.1) for i in range(10)),
                PhonemeTiming("_", 1.4, 0.6))
    b = ControlBuilder(sample_rate=SR)
    b.push_speech(speech(2.0, text, phonemes=phonemes, tags=(IntentTag("nod", char_offset=5),)))
    assert event_times(drain(b, 13), "nod") == [pytest.approx(0.9, abs=1 / FPS)]  # middle of the voiced span
    b = ControlBuilder(sample_rate=SR)
    b.push_speech(speech(2.0, text, tags=(IntentTag("shake", char_offset=5), IntentTag("blink", time=1.7))))
    chunks = drain(b, 13)
    assert event_times(chunks, "shake") == [pytest.approx(1.0, abs=1 / FPS)]  # 50% of the audio
    assert event_times(chunks, "blink") == [pytest.approx(1.7, abs=1 / FPS)]


def test_immediate_tags_and_empty_speech() -> None:
    b = ControlBuilder(sample_rate=SR)
    b.push_tag(IntentTag("wink", 0.5, source="mqtt"))
    b.push_speech(SpeechChunk(AudioChunk(np.zeros(0, np.int16), SR), "", tags=(IntentTag("nod"),)))
    c = b.next_chunk()
    assert {(e.name, e.frame) for e in c.events} == {("wink", 0), ("nod", 0)}
    assert not b.next_chunk().events


def test_emotions_ease_in_and_out_and_relax() -> None:
    b = ControlBuilder(sample_rate=SR, emotion_hold_s=3.0)
    b.push_tag(IntentTag("happy", 0.8))
    up = np.concatenate([c.expressions for c in drain(b, 10)])
    assert up[0, HAPPY] < 0.2  # no pop
    assert up[-1, HAPPY] > 0.75 and np.all(np.diff(up[:, HAPPY]) >= 0)
    b.push_tag(IntentTag("neutral"))
    down = np.concatenate([c.expressions for c in drain(b, 10)])
    assert down[0, HAPPY] > 0.6 and down[-1, HAPPY] < 0.05
    b.push_tag(IntentTag("sad"))
    hold = np.concatenate([c.expressions for c in drain(b, 40)])  # 6.4 s without speech
    sad = hold[:, EXPRESSIONS.index("sad")]
    assert sad[int(2.5 * FPS)] > 0.9 and sad[-1] < 0.1  # held, then relaxed after emotion_hold_s
    steps = np.abs(np.diff(np.concatenate([up, down, hold]), axis=0))
    assert steps.max() <= 1 - np.exp(-1 / (FPS * 0.35)) + 1e-5


def test_thinking_state_and_user_audio() -> None:
    b = ControlBuilder(sample_rate=SR)
    b.set_state(AgentState.THINKING)
    chunks = drain(b, 20)
    assert chunks[-1].state == AgentState.THINKING
    assert chunks[-1].expressions[-1, EXPRESSIONS.index("thinking")] > 0.35
    assert chunks[-1].gaze[-1, 0] > 0.3  # looking aside
    # listening: the user's pauses make small nods
    loud = AudioChunk((np.sin(np.arange(1600) * 0.2) * 12000).astype(np.int16), 16000)
    quiet = AudioChunk(np.zeros(1600, np.int16), 16000)
    b2, ref = ControlBuilder(sample_rate=SR, seed=1), ControlBuilder(sample_rate=SR, seed=1)
    for x in (b2, ref):
        x.set_state(AgentState.LISTENING)
    pitch, ref_pitch = [], []
    for k in range(40):
        b2.push_user_audio(loud if k < 15 else quiet)  # 0.1 s per call, 0.16 s per chunk
        pitch.append(b2.next_chunk().head_pose[:, 1])
        ref_pitch.append(ref.next_chunk().head_pose[:, 1])
    assert (np.concatenate(pitch) - np.concatenate(ref_pitch)).max() > 1.0


def test_interrupt_drops_speech_and_flags_one_chunk() -> None:
    b = ControlBuilder(sample_rate=SR)
    b.set_state(AgentState.SPEAKING)
    b.push_speech(speech(3.0, tags=(IntentTag("nod", time=2.5),)))
    drain(b, 5)
    assert b.speaking and b.speech_pending_s > 2.0
    b.interrupt()
    assert b.speech_pending_s == 0.0 and b.state == AgentState.LISTENING
    c = b.next_chunk()
    assert c.interrupt and c.state == AgentState.LISTENING and not c.audio.any() and not c.events
    assert not b.speaking
    later = drain(b, 20)
    assert not any(x.interrupt for x in later) and not any(x.events for x in later)


def conversation(b: ControlBuilder) -> list[ControlChunk]:
    """Turns with tags, thinking, barge-in mid-word, listening, immediate gestures."""
    out: list[ControlChunk] = []
    script = [
        (AgentState.THINKING, 8, None), (None, 0, speech(2.3, seed=3, tags=(IntentTag("happy", char_offset=0),
                                                                             IntentTag("nod", char_offset=6)))),
        (None, 9, None), (AgentState.LISTENING, 0, None), ("interrupt", 10, None),
        (AgentState.THINKING, 5, speech(1.7, seed=4, tags=(IntentTag("concerned", 0.7, char_offset=0),))),
        (None, 20, None), (AgentState.IDLE, 30, None),
    ]
    for state, n, sp in script:
        if state == "interrupt":
            b.interrupt()
        elif state is not None:
            b.set_state(state)  # type: ignore[arg-type]
        if sp is not None:
            b.push_speech(sp)
        out += drain(b, n)
    b.push_tag(IntentTag("angry"))
    b.push_tag(IntentTag("shake"))
    out += drain(b, 30)
    return out


def test_continuity_of_control_signals_across_barge_in_and_states() -> None:
    chunks = conversation(ControlBuilder(sample_rate=SR, seed=3))
    cat = {k: np.concatenate([getattr(c, k) for c in chunks]) for k in ("head_pose", "gaze", "expressions",
                                                                          "visemes", "blink")}
    assert np.abs(np.diff(cat["head_pose"], axis=0)).max() < 2.5  # degrees per frame
    assert np.abs(np.diff(cat["gaze"], axis=0)).max() < 0.3
    assert np.abs(np.diff(cat["expressions"], axis=0)).max() < 0.11
    assert np.abs(np.diff(cat["visemes"], axis=0)).max() < 0.8
    assert np.abs(np.diff(cat["blink"])).max() <= 0.7
    assert (cat["visemes"] >= 0).all() and np.allclose(cat["visemes"].sum(axis=1), 1.0, atol=0.05)
    assert any(c.interrupt for c in chunks)


def test_motion_from_the_builder_is_continuous_and_returns_to_listening() -> None:
    b = ControlBuilder(sample_rate=SR, seed=5)
    m = ProceduralMotion(seed=5)
    chunks = conversation(b)
    motion = np.concatenate([m.step(c).values for c in chunks])
    d = np.abs(np.diff(motion, axis=0))
    assert (d <= 2 * MAX_STEP + 1e-5).all()
    k = next(i for i, c in enumerate(chunks) if c.interrupt)
    jaw = motion[4 * k - 4 : 4 * k + 8, P["jaw_open"]]
    assert jaw[:4].max() > 0.2  # talking when the barge-in came
    assert jaw[8:].max() < 0.1  # mouth (nearly) closed within a chunk of it
    # the slew limit is a safety net, not the smoother: it rarely binds on face and head channels
    slow = [P[n] for n in ("smile", "frown", "brow_raise", "head_yaw", "head_pitch", "gaze_x")]
    assert (d[:, slow] >= MAX_STEP[slow] - 1e-6).mean() < 0.02


def test_deterministic_for_a_seed() -> None:
    a = conversation(ControlBuilder(sample_rate=SR, seed=9))
    b = conversation(ControlBuilder(sample_rate=SR, seed=9))
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.head_pose, y.head_pose) and np.array_equal(x.visemes, y.visemes)
        assert x.events == y.events and x.state == y.state


def test_all_visemes_are_reachable() -> None:
    b = ControlBuilder(sample_rate=SR, lookahead_s=0.0)
    phon = ("_", "p", "f", "θ", "t", "k", "ʃ", "s", "n", "ɹ", "ɑ", "ɛ", "ɪ", "ɔ", "u")
    b.push_speech(speech(3.0, phonemes=tuple(PhonemeTiming(p, 0.2 * i, 0.2) for i, p in enumerate(phon))))
    vis = np.concatenate([c.visemes for c in drain(b, 19)])
    winners = {VISEMES[int(np.argmax(vis[int((0.2 * i + 0.15) * FPS)]))] for i in range(len(phon))}
    assert winners == set(VISEMES)


def test_timed_emotion_expires_after_its_media_time() -> None:
    b = ControlBuilder(sample_rate=SR)  # 4 frames (0.16 s) per chunk
    drain(b, 3)  # the timeline does not start at zero
    b.push_tag(IntentTag("happy", 0.9, source="mqtt"), duration_s=1.0)
    happy = np.concatenate([c.expressions for c in drain(b, 20)])[:, HAPPY]  # 3.2 s of timeline
    assert happy[24] > 0.8  # held for 1.0 s (25 frames) ...
    assert np.all(np.diff(happy[:25]) >= 0) and np.all(np.diff(happy[25:]) < 0)  # ... then eased out
    assert happy[-1] < 0.05
    with pytest.raises(ValueError, match="duration_s"):
        b.push_tag(IntentTag("sad"), duration_s=0.0)


def test_timed_emotion_replaced_by_another_emotion_does_not_expire_it() -> None:
    b = ControlBuilder(sample_rate=SR)
    b.push_tag(IntentTag("happy"), duration_s=1.0)
    drain(b, 3)
    b.push_tag(IntentTag("sad", 0.8))  # no duration: held (until emotion_hold_s without speech)
    sad = np.concatenate([c.expressions for c in drain(b, 20)])[:, EXPRESSIONS.index("sad")]
    assert sad[-1] > 0.79 and np.all(np.diff(sad) >= 0)  # the happy expiry did not clear it
    b.push_tag(IntentTag("concerned"), duration_s=2.0)  # a timed one replacing a held one
    b.push_tag(IntentTag("nod"))  # gestures do not touch the expiry
    chunks = drain(b, 25)  # 4.0 s
    concerned = np.concatenate([c.expressions for c in chunks])[:, EXPRESSIONS.index("concerned")]
    assert concerned[49] > 0.95 and concerned[55] < concerned[49] and concerned[-1] < 0.05
    assert [e.name for c in chunks for e in c.events] == ["nod"]


def test_dry_samples_count_the_silence_played_since_the_queued_speech_ran_out() -> None:
    b = ControlBuilder(fps=FPS, sample_rate=SR)
    n = b.samples_per_chunk
    b.push_speech(speech(1.5 * n / SR))
    drain(b, 1)
    assert b.dry_samples == 0  # speech still queued
    drain(b, 1)
    assert b.dry_samples == n // 2  # the speech ended half-way through this chunk
    drain(b, 2)
    assert b.dry_samples == n // 2 + 2 * n
    b.push_speech(speech(0.1))
    assert b.dry_samples == 0
    b.push_speech(speech(2 * n / SR))
    drain(b, 1)
    b.interrupt()
    drain(b, 1)
    assert b.dry_samples == n  # after a barge-in, counted from the next chunk
