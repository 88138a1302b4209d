"""One procedural layer under both motion models: every gesture of the vocabulary has a head or face
part, and with the learned model (a tiny, test-built MMDiT) a nod moves the head, a wink closes one
eye, the chunk's head pose / blink / gaze reach the output and barge-in still eases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowact.control import GESTURES, ControlBuilder
from flowact.model import MMDiT, preset
from flowact.motion.base import MotionModel
from flowact.motion.learned import LearnedMotion
from flowact.motion.params import MOTION_DIM, MOTION_HIGH, MOTION_LOW, P
from flowact.motion.procedural import (
    FACE_GESTURES,
    GESTURE_TABLE,
    HEAD_GESTURES,
    STATE_EASE_S,
    ProceduralMotion,
    StateBlend,
)
from flowact.types import AgentState, AudioChunk, ControlChunk, IntentTag, SpeechChunk
from tests.flowact.test_procedural import chunk

torch.set_num_threads(1)
SR, FPS = 16000, 25


def tiny_learned(seed: int = 0) -> LearnedMotion:
    """A tiny motion MMDiT with every weight random (a zero-initialised output layer would hide bugs),
    its output scaled to a plausible motion range (std 0.05 around the neutral pose)."""
    torch.manual_seed(seed)
    model = MMDiT(preset("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return LearnedMotion(model, std=np.full(MOTION_DIM, 0.05, np.float32), steps=1, seed=seed)


def make_model(kind: str) -> MotionModel:
    return tiny_learned() if kind == "learned" else ProceduralMotion(seed=0)


def speech(seconds: float) -> SpeechChunk:
    t = np.arange(int(seconds * SR)) / SR
    pcm = ((0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 150 * t) * 8000).astype(np.int16)
    return SpeechChunk(AudioChunk(pcm, SR), "hello there")


def drive(model: MotionModel, tag: str | None, n_chunks: int = 12) -> tuple[np.ndarray, list[ControlChunk]]:
    """Builder -> model for `n_chunks` chunks of 4 frames; `tag` (if any) is pushed before the first."""
    b = ControlBuilder(sample_rate=SR, seed=1)
    b.set_state(AgentState.LISTENING)
    if tag is not None:
        b.push_tag(IntentTag(tag, source="test"))
    chunks = [b.next_chunk() for _ in range(n_chunks)]
    return np.concatenate([model.step(c).values for c in chunks]), chunks


def test_every_gesture_has_a_head_or_face_part() -> None:
    assert set(GESTURES) <= set(GESTURE_TABLE)
    for name in GESTURES:
        assert name in HEAD_GESTURES or name in FACE_GESTURES, name
    for name, g in GESTURE_TABLE.items():
        assert g.head_s > 0 or (g.face in P and g.face_s > 0), name


@pytest.mark.parametrize("kind", ["procedural", "learned"])
def test_every_gesture_tag_moves_the_face_with_either_model(kind: str) -> None:
    base, _ = drive(make_model(kind), None)
    for name in GESTURES:
        moved, _ = drive(make_model(kind), name)
        g = GESTURE_TABLE[name]
        channels = [P[g.face]] if g.face else []
        if g.head_s > 0:
            channels += [P[c] for c in ("head_yaw", "head_pitch", "blink_l", "blink_r", "gaze_x", "gaze_y")]
        diff = np.abs(moved - base)[:, channels].max()
        assert diff > 0.1, (kind, name, diff)


def test_learned_nod_moves_head_pitch_and_wink_closes_one_eye() -> None:
    base, base_chunks = drive(tiny_learned(), None)
    nod, nod_chunks = drive(tiny_learned(), "nod")
    bump = nod[:, P["head_pitch"]] - base[:, P["head_pitch"]]
    assert bump[:12].max() > 3.0  # a clear nod (degrees) within the gesture's 0.45 s
    assert np.abs(bump[15:]).max() < 1e-4  # and over afterwards
    assert (nod - base)[:, P["brow_raise"]].max() > 0.1  # its face part too
    np.testing.assert_allclose(nod[:, P["head_pitch"]], np.concatenate([c.head_pose[:, 1] for c in nod_chunks]))
    wink, _ = drive(tiny_learned(), "wink")
    assert wink[:, P["blink_l"]].max() > 0.8
    assert wink[:, P["blink_r"]].max() < 0.05 and base[:, P["blink_l"]].max() < 0.05  # one eye, no other blink
    assert wink[-1, P["blink_l"]] < 0.05  # opened again


def test_learned_output_takes_pose_blink_and_gaze_from_the_chunk() -> None:
    lm = tiny_learned()
    c = chunk(0, vis="aa", energy=0.7, pose=(5.0, -3.0, 2.0), gaze=(0.3, -0.2), blink=1.0)
    v = np.concatenate([lm.step(c).values for _ in range(3)])
    assert (v[:, P["head_yaw"]] == 5.0).all() and (v[:, P["head_pitch"]] == -3.0).all()
    assert (v[:, P["head_roll"]] == 2.0).all()
    assert (v[:, P["gaze_x"]] == np.float32(0.3)).all() and (v[:, P["gaze_y"]] == np.float32(-0.2)).all()
    assert (v[:, P["blink_l"]] == 1.0).all() and (v[:, P["blink_r"]] == 1.0).all()
    open_eyes = lm.step(chunk(3, blink=0.0)).values
    assert (open_eyes[:, P["blink_r"]] == 0.0).all()
    # the learned channels are the model's own: not all zero, and in range
    assert np.abs(v[:, P["jaw_open"]]).max() + np.abs(v[:, P["smile"]]).max() > 0.0
    assert ((v >= MOTION_LOW - 1e-6) & (v <= MOTION_HIGH + 1e-6)).all()


def test_learned_barge_in_still_eases() -> None:
    lm = tiny_learned()
    b = ControlBuilder(sample_rate=SR, seed=2)
    b.set_state(AgentState.SPEAKING)
    b.push_speech(speech(3.0))
    b.push_tag(IntentTag("smile"))
    rows = [lm.step(b.next_chunk()).values for _ in range(6)]
    b.interrupt()  # barge-in mid-speech and mid-smile: the next chunk carries interrupt=True
    after = [lm.step(b.next_chunk()).values for _ in range(6)]
    before, later = np.concatenate(rows), np.concatenate(after)
    run = np.concatenate([before, later])
    typical = np.abs(np.diff(before, axis=0)).max(axis=0)
    jump = np.abs(later[0] - before[-1])
    assert (jump <= typical + 1e-5).all()  # no bigger a jump than the model makes anyway
    assert np.abs(np.diff(run, axis=0))[:, P["smile"]].max() < 0.35  # the dropped smile fades, no cut


def test_one_state_easing_for_the_builder_and_the_face() -> None:
    """The builder's head/gaze and the motion model's face blend states through the same StateBlend:
    after STATE_EASE_S of a state its weight is 1 - 1/e, and the other weights fall symmetrically."""
    blend = StateBlend(FPS)
    for _ in range(round(STATE_EASE_S * FPS)):
        listening, thinking, speaking = blend.step(AgentState.THINKING)
    assert thinking == pytest.approx(1 - np.exp(-1), abs=0.01) and listening == speaking == 0.0
    for _ in range(round(STATE_EASE_S * FPS)):
        listening, thinking, _ = blend.step(AgentState.LISTENING)
    assert listening == pytest.approx(1 - np.exp(-1), abs=0.01)
    assert thinking == pytest.approx((1 - np.exp(-1)) * np.exp(-1), abs=0.01)
    # through the builder and the motion model, the thinking face eases in
    b, m = ControlBuilder(sample_rate=SR, seed=0), ProceduralMotion(seed=0)
    b.set_state(AgentState.THINKING)
    rows = [m.step(b.next_chunk()).values for _ in range(int(2 * STATE_EASE_S * FPS / 4))]
    furrow = np.concatenate(rows)[:, P["brow_furrow"]]
    assert furrow[0] < 0.05 and furrow[-1] > 0.1 and np.all(np.diff(furrow) >= -1e-6)  # eased in, no pop
