"""Procedural dynamics (blinks, nods, gaze, listening/thinking) and ProceduralMotion (mouth, face,
gestures, continuity across chunks, interrupt)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from flowact.motion.base import MotionModel
from flowact.motion.params import MOTION_DIM, MOTION_HIGH, MOTION_LOW, P
from flowact.motion.procedural import MAX_STEP, ProceduralDynamics, ProceduralMotion, frame_pitch
from flowact.motion.visemes import V
from flowact.types import EXPRESSIONS, N_MELS, VISEMES, AgentState, ControlChunk, ControlEvent

FPS = 25


def run_dynamics(
    dyn: ProceduralDynamics, seconds: float, energy_fn: Callable[[float], float] = lambda t: 0.0,
    state: AgentState | Callable[[float], AgentState] = AgentState.IDLE,
    events_at: Mapping[int, tuple[ControlEvent, ...]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_chunks = int(seconds * FPS / 4)
    pose, blink, gaze = [], [], []
    for k in range(n_chunks):
        e = np.array([energy_fn((4 * k + i) / FPS) for i in range(4)], np.float32)
        st = state(k * 4 / FPS) if callable(state) else state
        p, b, g = dyn.step(4, e, st, (events_at or {}).get(k, ()))
        pose.append(p)
        blink.append(b)
        gaze.append(g)
    return np.concatenate(pose), np.concatenate(blink), np.concatenate(gaze)


def onsets(x: np.ndarray, thr: float = 0.5) -> np.ndarray:
    up = (x[1:] >= thr) & (x[:-1] < thr)
    return np.nonzero(up)[0] + 1


def test_blinks_every_3_to_5_seconds_and_deterministic() -> None:
    _, blink, _ = run_dynamics(ProceduralDynamics(FPS, seed=3), 600)
    gaps = np.diff(onsets(blink)) / FPS
    assert 3.0 <= gaps.mean() <= 5.0
    assert gaps.min() >= 1.4
    assert blink.max() == 1.0 or blink.max() > 0.9
    _, again, _ = run_dynamics(ProceduralDynamics(FPS, seed=3), 600)
    assert np.array_equal(blink, again)
    _, other, _ = run_dynamics(ProceduralDynamics(FPS, seed=4), 600)
    assert not np.array_equal(blink, other)


def test_blinks_wait_for_word_boundaries() -> None:
    # words: 0.5 s loud, 0.16 s quiet gap
    def energy(t: float) -> float:
        return 0.8 if (t % 0.66) < 0.5 else 0.1

    _, blink, _ = run_dynamics(ProceduralDynamics(FPS, seed=1), 300, energy, AgentState.SPEAKING)
    starts = np.nonzero((blink[1:] > 0) & (blink[:-1] == 0))[0] + 1
    assert len(starts) > 40
    in_gap = [(i - 1) / FPS % 0.66 >= 0.5 - 1e-6 for i in starts]  # the blink was triggered in a gap
    assert np.mean(in_gap) > 0.9


def test_blink_and_nod_tags() -> None:
    dyn = ProceduralDynamics(FPS, seed=0)
    dyn._next_blink = 1e9  # no spontaneous blinks
    events = {5: (ControlEvent(1, "blink"),), 20: (ControlEvent(0, "nod", 1.0),), 40: (ControlEvent(0, "shake"),)}
    pose, blink, _ = run_dynamics(dyn, 8, events_at=events)
    assert len(onsets(blink)) == 1 and 5 * 4 <= onsets(blink)[0] <= 5 * 4 + 3
    quiet = ProceduralDynamics(FPS, seed=0)
    quiet._next_blink = 1e9
    base, _, _ = run_dynamics(quiet, 8)
    nod = pose[:, 1] - base[:, 1]
    assert nod[80:92].max() > 3.0 and abs(nod[:80]).max() < 1e-6  # pitch bump after the tag only
    shake = pose[:, 0] - base[:, 0]
    assert shake[160:185].max() > 2.0 and shake[160:185].min() < -2.0


def syllables(seconds: float, accent: Callable[[int], bool], *, pitch_accent: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (energy, pitch Hz) of 0.24 s syllables + 0.08 s gaps; accented syllables are higher or louder."""
    n = int(seconds * FPS)
    energy, pitch = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for i in range(n):
        k, phase = divmod(i, 8)  # 8 frames per syllable
        if phase < 6:
            hot = accent(k)
            energy[i] = 0.82 if hot and not pitch_accent else 0.68
            pitch[i] = 170.0 if hot and pitch_accent else 120.0
    return energy, pitch


def stress_nod_frames(energy: np.ndarray, pitch: np.ndarray) -> list[int]:
    dyn = ProceduralDynamics(FPS, seed=2)
    frames = []
    for k in range(0, len(energy), 4):
        before = dyn.stress_nods
        for i in range(4):  # one frame at a time to know which frame nodded
            dyn.step(1, energy[k + i : k + i + 1], AgentState.SPEAKING, (), pitch[k + i : k + i + 1])
            if dyn.stress_nods > before:
                frames.append(k + i)
                before = dyn.stress_nods
    return frames


def test_speaking_nods_on_pitch_and_energy_accents() -> None:
    def accent(k: int) -> bool:
        return k % 6 == 5  # every sixth syllable (~2 s)

    for pitch_accent in (True, False):
        energy, pitch = syllables(30, accent, pitch_accent=pitch_accent)
        nods = stress_nod_frames(energy, pitch)
        assert len(nods) >= 12, pitch_accent
        assert all(accent(f // 8) for f in nods), pitch_accent  # only on the accented syllables
    flat_e, flat_p = syllables(30, lambda k: False, pitch_accent=True)
    assert stress_nod_frames(flat_e, flat_p) == []  # monotone speech: no nodding
    # the nods move the head
    energy, pitch = syllables(10, accent, pitch_accent=True)
    a, b = ProceduralDynamics(FPS, seed=2), ProceduralDynamics(FPS, seed=2)
    diff = []
    for k in range(0, len(energy), 4):
        pa = a.step(4, energy[k : k + 4], AgentState.SPEAKING, (), pitch[k : k + 4])[0]
        pb = b.step(4, energy[k : k + 4], AgentState.SPEAKING, (), np.full(4, 120.0, np.float32))[0]
        diff.append(pa[:, 1] - pb[:, 1])
    assert np.concatenate(diff).max() > 1.0


def test_frame_pitch() -> None:
    for sr in (16000, 22050, 24000):
        t = np.arange(sr) / sr
        for f0 in (80.0, 120.0, 180.0, 260.0, 350.0):
            x = np.sum([a * np.sin(2 * np.pi * f0 * h * t) for h, a in ((1, 1.0), (2, 0.5), (3, 0.3))], axis=0)
            est = frame_pitch((0.3 * x).astype(np.float32), sr, FPS, 20)[2:18]
            assert np.all(np.abs(est / f0 - 1) < 0.04), (sr, f0, est)
        noise = np.random.default_rng(0).normal(0, 0.1, sr).astype(np.float32)
        assert not frame_pitch(noise, sr, FPS, 20).any()
        assert not frame_pitch(np.zeros(sr, np.float32), sr, FPS, 20).any()


def test_listening_nods_at_user_pauses() -> None:
    def user_level(t: float) -> float:
        return 0.8 if (t % 3.0) < 2.0 else 0.05  # 2 s of talk, then a 1 s pause

    dyn, ref = ProceduralDynamics(FPS, seed=5), ProceduralDynamics(FPS, seed=5)
    pitch, ref_pitch = [], []
    for k in range(int(12 * FPS / 4)):
        dyn.listen(user_level(k * 4 / FPS), 4 / FPS)
        pitch.append(dyn.step(4, np.zeros(4, np.float32), AgentState.LISTENING)[0][:, 1])
        ref_pitch.append(ref.step(4, np.zeros(4, np.float32), AgentState.LISTENING)[0][:, 1])
    bump = np.concatenate(pitch) - np.concatenate(ref_pitch)
    assert bump.max() > 1.5
    starts = onsets(bump, 0.5) / FPS
    assert len(starts) == 4  # one nod per pause
    assert all(2.0 <= t % 3.0 <= 2.6 for t in starts)  # just after each pause starts
    talker = ProceduralDynamics(FPS, seed=5)
    for _ in range(75):
        talker.listen(0.8, 4 / FPS)  # talking without a pause: no nod
    assert not [i for i in talker._impulses if i.kind == "listen_nod"]


def test_thinking_looks_aside_and_eases() -> None:
    def state(t: float) -> AgentState:
        return AgentState.THINKING if 4.0 <= t < 10.0 else AgentState.IDLE

    pose, _, gaze = run_dynamics(ProceduralDynamics(FPS, seed=0), 16, state=state)
    assert gaze[200:250, 0].mean() > 0.3 and gaze[200:250, 1].mean() < -0.2
    assert abs(gaze[:100, 0].mean()) < 0.2 and abs(gaze[-50:, 0].mean()) < 0.25
    assert np.abs(np.diff(gaze, axis=0)).max() < 0.3
    assert np.abs(np.diff(pose, axis=0)).max() < 2.5


def test_dynamics_state_bounded() -> None:
    dyn = ProceduralDynamics(FPS, seed=0)
    ev = (ControlEvent(0, "nod"), ControlEvent(1, "blink"), ControlEvent(2, "shake"), ControlEvent(3, "look_away"))
    for _ in range(3000):
        dyn.step(4, np.full(4, 0.9, np.float32), AgentState.SPEAKING, ev)
    assert len(dyn._impulses) <= 16


# --- ProceduralMotion ------------------------------------------------------------------------------------


def chunk(index: int, *, vis: str = "sil", energy: float = 0.0, expr: dict[str, float] | None = None,
          state: AgentState = AgentState.IDLE, events: tuple[ControlEvent, ...] = (), interrupt: bool = False,
          blink: float = 0.0, pose: tuple[float, ...] = (0.0, 0.0, 0.0), gaze: tuple[float, ...] = (0.0, 0.0),
          n: int = 4) -> ControlChunk:
    visemes = np.zeros((n, len(VISEMES)), np.float32)
    visemes[:, V[vis]] = 1.0
    expressions = np.zeros((n, len(EXPRESSIONS)), np.float32)
    for k, v in (expr or {}).items():
        expressions[:, EXPRESSIONS.index(k)] = v
    return ControlChunk(
        index=index, pts=index * n / FPS, fps=FPS, n_frames=n, sample_rate=16000,
        audio=np.zeros(n * 16000 // FPS, np.int16), mel=np.full((n, N_MELS), -13.8, np.float32),
        energy=np.full(n, energy, np.float32), visemes=visemes, expressions=expressions,
        head_pose=np.tile(np.array(pose, np.float32), (n, 1)), blink=np.full(n, blink, np.float32),
        gaze=np.tile(np.array(gaze, np.float32), (n, 1)), state=state, events=events, interrupt=interrupt,
    )


def settle(m: ProceduralMotion, c: ControlChunk, times: int = 10) -> np.ndarray:
    for _ in range(times):
        out = m.step(c).values
    return out


def test_is_a_motion_model() -> None:
    m = ProceduralMotion(seed=1)
    assert isinstance(m, MotionModel)
    out = m.step(chunk(0))
    assert out.values.shape == (4, MOTION_DIM) and out.index == 0 and out.fps == FPS


def test_mouth_follows_visemes_and_energy() -> None:
    m = ProceduralMotion()
    aa_loud = settle(m, chunk(0, vis="aa", energy=0.9))[-1]
    aa_soft = settle(ProceduralMotion(), chunk(0, vis="aa", energy=0.2))[-1]
    pp = settle(m, chunk(0, vis="PP"))[-1]
    ou = settle(m, chunk(0, vis="ou", energy=0.6))[-1]
    assert aa_loud[P["jaw_open"]] > 0.8 > aa_soft[P["jaw_open"]] > 0.4
    assert pp[P["lip_press"]] > 0.9 and pp[P["jaw_open"]] < 0.05
    assert ou[P["mouth_round"]] > 0.9


def test_expressions_drive_the_face() -> None:
    happy = settle(ProceduralMotion(), chunk(0, expr={"happy": 1.0}))[-1]
    sad = settle(ProceduralMotion(), chunk(0, expr={"sad": 1.0}))[-1]
    surprised = settle(ProceduralMotion(), chunk(0, expr={"surprised": 1.0}))[-1]
    angry = settle(ProceduralMotion(), chunk(0, expr={"angry": 1.0}))[-1]
    assert happy[P["smile"]] > 0.7 and happy[P["cheek_raise"]] > 0.5
    assert sad[P["frown"]] > 0.5 and sad[P["brow_inner_up"]] > 0.6
    assert surprised[P["brow_raise"]] > 0.8 and surprised[P["eye_wide"]] > 0.7
    assert angry[P["brow_furrow"]] > 0.8 and angry[P["brow_raise"]] < -0.4


def test_events_are_transient_gestures() -> None:
    m = ProceduralMotion()
    settle(m, chunk(0))
    rows = [m.step(chunk(1, events=(ControlEvent(0, "wink"), ControlEvent(0, "smile", 0.8)))).values]
    rows += [m.step(chunk(2 + k)).values for k in range(15)]
    v = np.concatenate(rows)
    assert v[:, P["blink_l"]].max() > 0.8 and v[:, P["blink_r"]].max() < 1e-6  # one eye only
    assert v[:, P["smile"]].max() > 0.4
    assert v[-1, P["smile"]] < 0.05 and v[-1, P["blink_l"]] < 0.05  # gone again


def test_pose_blink_gaze_come_from_the_chunk() -> None:
    v = settle(ProceduralMotion(), chunk(0, pose=(5.0, -3.0, 2.0), gaze=(0.3, -0.2), blink=1.0), 20)[-1]
    assert v[P["head_yaw"]] == 5.0 and v[P["head_pitch"]] == -3.0 and v[P["head_roll"]] == 2.0
    assert v[P["gaze_x"]] == np.float32(0.3) and v[P["blink_r"]] == 1.0


def test_listening_face_is_attentive() -> None:
    listen = settle(ProceduralMotion(), chunk(0, state=AgentState.LISTENING), 20)[-1]
    idle = settle(ProceduralMotion(), chunk(0), 20)[-1]
    assert listen[P["brow_raise"]] > idle[P["brow_raise"]] + 0.08


def test_continuity_across_random_jumps_state_changes_and_interrupts() -> None:
    rng = np.random.default_rng(0)
    m = ProceduralMotion(seed=2)
    rows = []
    for k in range(600):
        c = chunk(
            k, vis=str(rng.choice(VISEMES)), energy=float(rng.uniform()),
            expr={str(rng.choice(EXPRESSIONS)): float(rng.uniform())}, state=AgentState(rng.choice(list(AgentState))),
            events=(ControlEvent(int(rng.integers(4)), str(rng.choice(["nod", "smile", "wink", "raise_brows"]))),),
            interrupt=bool(rng.uniform() < 0.05), blink=float(rng.uniform() < 0.1),
            pose=tuple(rng.uniform(-20, 20, 3)), gaze=tuple(rng.uniform(-1, 1, 2)),
        )
        if rng.uniform() < 0.03:
            m.interrupt()
        rows.append(m.step(c).values)
    v = np.concatenate(rows)
    d = np.abs(np.diff(v, axis=0))
    assert (d <= 2.0 * MAX_STEP + 1e-5).all()  # interrupt eases at up to 2x the normal rate
    assert (v >= MOTION_LOW - 1e-6).all() and (v <= MOTION_HIGH + 1e-6).all()


def test_interrupt_eases_to_listening_within_a_few_frames() -> None:
    m = ProceduralMotion()
    settle(m, chunk(0, vis="aa", energy=1.0, expr={"angry": 1.0}))
    m.interrupt()
    v = np.concatenate([m.step(chunk(1 + k, state=AgentState.LISTENING, interrupt=k == 0)).values for k in range(2)])
    assert v[0, P["jaw_open"]] > 0.2  # no jump cut: still partly open on the first frame
    assert v[4, P["jaw_open"]] < 0.05  # closed within 5 frames (200 ms)
    assert np.abs(np.diff(v, axis=0)).max(axis=0)[P["jaw_open"]] <= 2 * MAX_STEP[P["jaw_open"]] + 1e-6


def test_seed_and_reset() -> None:
    a, b = ProceduralMotion(seed=1), ProceduralMotion(seed=1)
    ca = [a.step(chunk(k)).values for k in range(5)]
    cb = [b.step(chunk(k)).values for k in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(ca, cb, strict=True))
    a.reset()
    assert np.array_equal(a.step(chunk(0)).values, ca[0])
