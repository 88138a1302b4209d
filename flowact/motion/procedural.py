"""Procedural motion: rules that make a portrait look alive and attentive.

`ProceduralDynamics` (used by the control builder each chunk; seeded, no I/O, fixed-size state)
produces head pose, blinks and gaze: slow idle sway from smooth noise (sums of incommensurate
sines with seeded phases), small nods on stressed syllables (energy and pitch prominent above
their running means) while speaking, small nods at the user's pauses while listening (driven by
the user's own audio level), an attentive head tilt while listening, gaze aside while thinking,
gaze saccades, a slight breathing motion, blinks every 3-5 s (gamma distributed, mean 4 s)
postponed while a word is being spoken, and gestures on tags (nod, shake, blink, wink, look_away,
lean_in). State changes are eased (time constant STATE_EASE_S), never popped.

`ProceduralMotion` is the default `MotionModel`: ControlChunk -> per-frame motion vector. Visemes
-> mouth shapes (`VISEME_SHAPES`, jaw opening modulated by energy), expression weights -> face
(`EXPRESSION_SHAPES`), events -> transient face gestures (smile, frown, raise_brows, wink, ...),
head pose / blink / gaze from the chunk, breathing, an attentive face while listening; a per-frame
slew limit (`MAX_STEP`) keeps every parameter continuous across chunks, state changes and
barge-in (interrupt eases back to the listening pose within a few frames).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from flowact.motion.params import MOTION_DIM, MotionChunk, P, clamp_motion
from flowact.motion.visemes import MOUTH_INDEX, VISEME_SHAPES
from flowact.types import EXPRESSIONS, AgentState, ControlChunk, ControlEvent, FloatArray

__all__ = ["EXPRESSION_SHAPES", "MAX_STEP", "STATE_EASE_S", "ProceduralDynamics", "ProceduralMotion", "frame_pitch"]

STATE_EASE_S = 0.4
"""Time constant (s) of the blend between idle / listening / thinking / speaking behaviours."""
_HEAD_GESTURES = ("nod", "shake", "blink", "wink", "look_away", "lean_in")
_GESTURE_LEN = {"nod": 0.45, "listen_nod": 0.45, "shake": 1.0, "look_away": 1.2, "blink": 0.2,
                "wink": 0.2, "lean_in": 1.6}


@dataclass(slots=True)
class _Impulse:
    start: float
    kind: str  # nod | listen_nod | shake | look_away | blink | wink | lean_in
    amp: float


def _ease_in_out(x: float) -> float:
    """Smooth 0 -> 1 -> 0 bump over x in [0, 1] (zero slope at both ends)."""
    return 0.5 - 0.5 * math.cos(2 * math.pi * min(max(x, 0.0), 1.0))


class ProceduralDynamics:
    """Head pose, blink and gaze for one chunk at a time (seeded, no I/O, bounded state)."""

    def __init__(self, fps: int = 25, seed: int = 0) -> None:
        self.fps = fps
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self._phases = self.rng.uniform(0, 2 * math.pi, size=8)
        self._impulses: deque[_Impulse] = deque(maxlen=16)
        self._next_blink = self._draw_blink_gap()
        self._last_nod = -10.0
        self.stress_nods = 0  # nods triggered by stressed syllables so far
        self._prev_energy = 0.0
        self._e_mean = 0.6  # running mean of voiced energy (stress = prominence above it)
        self._st_mean = 0.0  # running mean of voiced pitch in semitones re 100 Hz (0 = unknown yet)
        self._gaze = (0.0, 0.0)  # plain floats: this loop runs per frame
        self._gaze_target = (0.0, 0.0)
        self._next_saccade = 1.0
        self._user_voiced_s = 0.0
        self._user_silence_s = 0.0
        self._w = {AgentState.LISTENING: 0.0, AgentState.THINKING: 0.0, AgentState.SPEAKING: 0.0}
        self._a_state = 1.0 - math.exp(-1.0 / (fps * STATE_EASE_S))

    def _draw_blink_gap(self) -> float:
        return float(np.clip(self.rng.gamma(8.0, 0.5), 1.5, 9.0))  # mean 4 s, mostly 3-5 s

    def trigger(self, kind: str, amp: float = 1.0) -> None:
        """Start a gesture now (nod, listen_nod, shake, blink, wink, look_away, lean_in)."""
        if kind in _GESTURE_LEN:
            self._impulses.append(_Impulse(self.t, kind, float(min(max(amp, 0.0), 1.0))))

    def listen(self, user_energy: float, dt: float) -> None:
        """The user's own audio level (0..1) over `dt` seconds: a small nod at their pauses."""
        if user_energy > 0.35:
            self._user_voiced_s += dt
            self._user_silence_s = 0.0
        else:
            self._user_silence_s += dt
            if self._user_voiced_s > 1.0 and self._user_silence_s > 0.25:
                self.trigger("listen_nod", 0.6)
                self._user_voiced_s = 0.0

    def step(
        self, n: int, energy: FloatArray, state: AgentState, events: tuple[ControlEvent, ...] = (),
        pitch_hz: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(head_pose (n, 3) degrees, blink (n,), gaze (n, 2)) for the next n frames.

        `energy` (0..1) and optional `pitch_hz` (0 = unvoiced, see `frame_pitch`) of the agent's own
        speech drive the nods on stressed syllables.
        """
        dt = 1.0 / self.fps
        pose = np.zeros((n, 3), np.float32)
        blink = np.zeros(n, np.float32)
        gaze = np.zeros((n, 2), np.float32)
        for i in range(n):
            for ev in events:
                if ev.frame == i and ev.name in _HEAD_GESTURES:
                    self.trigger(ev.name, ev.intensity)
            for s in self._w:  # eased state blend
                self._w[s] += ((1.0 if s == state else 0.0) - self._w[s]) * self._a_state
            w_listen, w_think, w_speak = (self._w[s] for s in self._w)
            t = self.t
            e = float(energy[i]) if i < len(energy) else 0.0
            f0 = float(pitch_hz[i]) if pitch_hz is not None and i < len(pitch_hz) else 0.0
            if state == AgentState.SPEAKING:
                self._stress(t, e, f0)
            self._prev_energy = e
            amp = 1.0 + 0.5 * w_speak  # idle sway, livelier while speaking
            yaw = amp * (1.6 * self._wave(t, 0.071, 0) + 0.6 * self._wave(t, 0.23, 1))
            pitch = amp * (1.0 * self._wave(t, 0.093, 2) + 0.4 * self._wave(t, 0.31, 3))
            roll = amp * (0.8 * self._wave(t, 0.053, 4) + 0.3 * self._wave(t, 0.19, 5))
            pitch += 0.3 * self._wave(t, 0.22, 6)  # breathing (the `breath` channel is ProceduralMotion's)
            roll += 2.0 * w_listen  # attentive tilt, slightly down-forward
            pitch += 1.0 * w_listen - 1.5 * w_think
            yaw += 3.0 * w_think
            sx, sy = self._saccade(t, 0.08 + 0.1 * (1.0 - w_listen))
            gx, gy = sx * (1.0 - w_think) + 0.45 * w_think, sy * (1.0 - w_think) - 0.35 * w_think
            b = 0.0
            for imp in list(self._impulses):
                age = t - imp.start
                x = age / _GESTURE_LEN[imp.kind]
                if x > 1.0:
                    self._impulses.remove(imp)
                    continue
                if imp.kind in ("nod", "listen_nod"):
                    pitch += 5.0 * imp.amp * math.sin(math.pi * x) * (0.6 if imp.kind == "listen_nod" else 1.0)
                elif imp.kind == "shake":
                    yaw += 5.0 * imp.amp * math.sin(2 * math.pi * 1.6 * age) * math.sin(math.pi * x)
                elif imp.kind == "lean_in":
                    pitch += 3.0 * imp.amp * _ease_in_out(x)
                elif imp.kind == "look_away":
                    k = _ease_in_out(x)
                    gx, gy = gx * (1 - k) + 0.6 * imp.amp * k, gy * (1 - k) - 0.15 * imp.amp * k
                elif imp.kind == "blink":
                    b = max(b, _blink_curve(age) * imp.amp)
            # spontaneous blink, postponed while a word is loud (not mid-word), by at most 1 s
            if t >= self._next_blink and (e < 0.45 or t - self._next_blink > 1.0):
                self.trigger("blink")
                self._next_blink = t + self._draw_blink_gap()
            x0, y0 = self._gaze
            self._gaze = (x0 + (gx - x0) * 0.35, y0 + (gy - y0) * 0.35)  # fast, smooth saccade
            pose[i] = (yaw, pitch, roll)
            blink[i] = b
            gaze[i] = self._gaze
            self.t += dt
        return pose, blink, gaze

    def _stress(self, t: float, e: float, f0: float) -> None:
        """Stressed syllable = energy and/or pitch prominent above their running means -> a small nod."""
        if e < 0.45:
            return
        st = 12.0 * math.log2(f0 / 100.0) if f0 > 0 else 0.0
        score = max(0.0, e - self._e_mean) / 0.12
        if f0 > 0 and self._st_mean != 0.0 and abs(st - self._st_mean) > 7.0:
            f0 = 0.0  # an octave error of the pitch tracker, not intonation: ignore
        if f0 > 0 and self._st_mean != 0.0:
            score += max(0.0, st - self._st_mean) / 2.5
        if score >= 1.0 and e >= self._prev_energy and t - self._last_nod > 1.0:
            self.trigger("nod", min(1.0, 0.25 + 0.15 * score))
            self._last_nod = t
            self.stress_nods += 1
        a = 1.0 / (self.fps * 1.5)  # ~1.5 s memory
        self._e_mean += (e - self._e_mean) * a
        if f0 > 0:
            self._st_mean = st if self._st_mean == 0.0 else self._st_mean + (st - self._st_mean) * a

    def _wave(self, t: float, freq: float, k: int) -> float:
        return math.sin(2 * math.pi * freq * t + float(self._phases[k]))

    def _saccade(self, t: float, spread: float) -> tuple[float, float]:
        if t >= self._next_saccade:
            gx, gy = self.rng.uniform(-spread, spread, size=2)
            self._gaze_target = (float(gx), float(gy))
            self._next_saccade = t + float(self.rng.uniform(0.8, 3.0))
        return self._gaze_target


def frame_pitch(samples: FloatArray, sample_rate: int, fps: int, n_frames: int,
                fmin: float = 70.0, fmax: float = 400.0) -> FloatArray:
    """Per-video-frame fundamental frequency in Hz (0 where unvoiced) by normalized autocorrelation.

    The signal is decimated to about 8 kHz (box filter); frame k uses the window starting at k*hop
    of max(hop, 2.5 periods of fmin). A frame is voiced when its autocorrelation peak in
    [1/fmax, 1/fmin] exceeds 0.5; the shortest lag reaching 0.9 of the best peak wins (octave-safe).
    """
    q = max(1, int(sample_rate // 8000))
    sr = sample_rate / q
    usable = len(samples) // q * q
    x = samples[0:usable:q].astype(np.float32)
    for r in range(1, q):  # box filter before decimation (scale is irrelevant)
        x += samples[r:usable:q]
    hop = sr / fps
    win = int(max(hop, 2.5 * sr / fmin))
    lo, hi = int(sr / fmax), int(sr / fmin)
    out = np.zeros(n_frames, np.float32)
    nfft = 2 * win
    if hop == win and len(x) >= n_frames * win:
        frames = x[: n_frames * win].reshape(n_frames, win)
    else:
        x = np.concatenate([x, np.zeros(win, np.float32)])
        starts = (np.arange(n_frames) * hop).astype(np.int64)
        frames = x[np.minimum(starts[:, None] + np.arange(win)[None, :], len(x) - 1)]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, n=nfft, axis=1)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, n=nfft, axis=1)[:, : hi + 1]
    energy = ac[:, 0] + 1e-9
    # unbiased: divide by the overlap length so that long lags are not penalised
    norm = ac[:, lo : hi + 1] / energy[:, None] * (win / (win - np.arange(lo, hi + 1)))[None, :]
    peak = norm.max(axis=1)
    voiced = (peak > 0.5) & (energy > 1e-4 * win * q * q)  # not near-silence (x is a sum of q samples)
    first = np.argmax(norm >= 0.9 * peak[:, None], axis=1)  # shortest lag near the best peak
    falling = np.concatenate([np.diff(norm, axis=1) <= 0, np.ones((n_frames, 1), bool)], axis=1)
    top = np.argmax(falling & (np.arange(norm.shape[1])[None, :] >= first[:, None]), axis=1)  # its top
    out[voiced] = sr / (lo + top[voiced])
    return out


def _blink_curve(age: float) -> float:
    """Eyelid closure during a 200 ms blink: 60 ms close, 20 ms hold, 120 ms open."""
    if age < 0.0:
        return 0.0
    if age < 0.06:
        return age / 0.06
    if age < 0.08:
        return 1.0
    return max(0.0, 1.0 - (age - 0.08) / 0.12)


# Face parameters driven by each expression channel (rows EXPRESSIONS, columns _FACE).
_FACE = ("smile", "frown", "brow_raise", "brow_furrow", "brow_inner_up", "eye_wide", "cheek_raise", "jaw_open")
_EXPR = {
    "happy": (0.8, 0.0, 0.15, 0.0, 0.0, 0.0, 0.6, 0.05),
    "sad": (0.0, 0.6, -0.1, 0.2, 0.8, 0.0, 0.0, 0.0),
    "surprised": (0.0, 0.0, 0.9, 0.0, 0.2, 0.8, 0.0, 0.15),
    "concerned": (0.0, 0.3, 0.0, 0.6, 0.6, 0.0, 0.0, 0.0),
    "thinking": (0.0, 0.1, 0.2, 0.4, 0.0, 0.0, 0.0, 0.0),
    "angry": (0.0, 0.5, -0.6, 0.9, 0.0, 0.2, 0.0, 0.0),
}
EXPRESSION_SHAPES: FloatArray = np.array([_EXPR[e] for e in EXPRESSIONS], dtype=np.float32)
"""(len(EXPRESSIONS), 8) face activations per expression channel; columns are `_FACE` motion params."""
_FACE_INDEX = np.array([P[f] for f in _FACE])

# Largest change of each parameter between consecutive frames (units per frame at 25 fps).
MAX_STEP = np.full(MOTION_DIM, 0.25, np.float32)
for _n in ("jaw_open", "lip_press", "mouth_wide", "mouth_round", "lip_funnel", "upper_lip_raise"):
    MAX_STEP[P[_n]] = 0.35
for _n in ("blink_l", "blink_r"):
    MAX_STEP[P[_n]] = 0.6
for _n in ("smile", "frown", "brow_raise", "brow_furrow", "brow_inner_up", "eye_wide", "cheek_raise"):
    MAX_STEP[P[_n]] = 0.12
for _n in ("head_yaw", "head_pitch", "head_roll"):
    MAX_STEP[P[_n]] = 2.5
for _n in ("gaze_x", "gaze_y"):
    MAX_STEP[P[_n]] = 0.3
MAX_STEP[P["breath"]] = 0.1

# Face gestures from events: motion param, peak activation, duration (s).
_GESTURE_FACE: dict[str, tuple[str, float, float]] = {
    "smile": ("smile", 0.7, 1.4), "frown": ("frown", 0.6, 1.2), "raise_brows": ("brow_raise", 0.8, 0.9),
    "lean_in": ("eye_wide", 0.25, 1.6), "shake": ("brow_furrow", 0.3, 0.9), "nod": ("brow_raise", 0.15, 0.45),
}
# Attentive face while listening, puzzled brow while thinking (added on top, eased by state weight).
_LISTEN_FACE = {"brow_raise": 0.12, "eye_wide": 0.08, "smile": 0.08}
_THINK_FACE = {"brow_furrow": 0.15, "lip_press": 0.15}


class ProceduralMotion:
    """Default motion model: ControlChunk -> MotionChunk by rules (see the module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._breath_phase = float(rng.uniform(0, 2 * math.pi))
        self._prev: FloatArray | None = None
        self._t = 0.0
        self._gestures: deque[tuple[float, str, float]] = deque(maxlen=16)
        self._ease_frames = 0
        self._w_listen = 0.0
        self._w_think = 0.0

    def interrupt(self) -> None:
        """Barge-in: the next frames move to the listening pose at up to twice the normal rate."""
        self._ease_frames = 6
        self._gestures.clear()

    def step(self, control: ControlChunk) -> MotionChunk:
        n, fps = control.n_frames, control.fps
        if control.interrupt:
            self.interrupt()
        m = np.zeros((n, MOTION_DIM), np.float32)
        mouth = control.visemes @ VISEME_SHAPES  # (n, 6)
        mouth[:, 0] *= np.clip(0.6 + 0.6 * control.energy, 0.6, 1.2)  # louder -> wider jaw
        m[:, MOUTH_INDEX] = mouth
        m[:, _FACE_INDEX] += control.expressions @ EXPRESSION_SHAPES  # (n, 8)
        times = self._t + np.arange(n, dtype=np.float64) / fps
        for ev in control.events:
            if ev.name in _GESTURE_FACE or ev.name == "wink":
                self._gestures.append((self._t + ev.frame / fps, ev.name, ev.intensity))
        for start, name, amp in list(self._gestures):
            age = times - start
            if name == "wink":
                m[:, P["blink_l"]] += amp * np.array([_blink_curve(a * 0.6) for a in age], np.float32)
                dur = 0.34
            else:
                param, peak, dur = _GESTURE_FACE[name]
                env = np.sin(np.pi * np.clip(age / dur, 0.0, 1.0)) * (age >= 0)
                m[:, P[param]] += np.float32(peak * amp) * env.astype(np.float32)
            if times[-1] - start > dur:
                self._gestures.remove((start, name, amp))
        a = 1.0 - math.exp(-1.0 / (fps * STATE_EASE_S))
        for i in range(n):
            self._w_listen += (float(control.state == AgentState.LISTENING) - self._w_listen) * a
            self._w_think += (float(control.state == AgentState.THINKING) - self._w_think) * a
            for name, v in _LISTEN_FACE.items():
                m[i, P[name]] += v * self._w_listen
            for name, v in _THINK_FACE.items():
                m[i, P[name]] += v * self._w_think
        m[:, P["head_yaw"]] = control.head_pose[:, 0]
        m[:, P["head_pitch"]] = control.head_pose[:, 1]
        m[:, P["head_roll"]] = control.head_pose[:, 2]
        m[:, P["blink_l"]] = np.maximum(m[:, P["blink_l"]], control.blink)
        m[:, P["blink_r"]] = control.blink
        m[:, P["gaze_x"]] = control.gaze[:, 0]
        m[:, P["gaze_y"]] = control.gaze[:, 1]
        m[:, P["breath"]] = np.sin(2 * np.pi * 0.22 * times + self._breath_phase).astype(np.float32)
        m = clamp_motion(m)
        out = np.empty_like(m)
        prev = m[0].copy() if self._prev is None else self._prev
        for i in range(n):
            step = MAX_STEP
            if self._ease_frames > 0:  # barge-in: a faster but still smooth return
                step = MAX_STEP * 2.0
                self._ease_frames -= 1
            prev = prev + np.clip(m[i] - prev, -step, step)
            out[i] = prev
        self._prev = prev.copy()
        self._t += n / fps
        return MotionChunk(index=control.index, pts=control.pts, fps=fps, values=out)
