"""Procedural motion: rules that make a portrait look alive and attentive.

`ProceduralDynamics` (used by the control builder each chunk) produces head pose, blinks and gaze:
slow idle sway from smooth noise, nods on stressed syllables (energy peaks) while speaking, small
nods at the user's pauses while listening, gaze aside while thinking, blinks every 3-5 s (mean 4 s)
but not mid-word, and gestures on tags (nod, shake, blink, wink, look_away).

`ProceduralMotion` is the default `MotionModel`: ControlChunk -> per-frame motion vector (visemes
-> mouth shapes, expression weights -> face, events -> transient gestures, pose/blink/gaze from the
chunk, breathing), with a per-frame slew limit so nothing ever pops.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from flowact.motion.params import MOTION_DIM, MotionChunk, P, clamp_motion
from flowact.motion.visemes import MOUTH_INDEX, VISEME_SHAPES
from flowact.types import EXPRESSIONS, AgentState, ControlChunk, ControlEvent, FloatArray

__all__ = ["ProceduralDynamics", "ProceduralMotion", "EXPRESSION_SHAPES", "MAX_STEP"]


@dataclass(slots=True)
class _Impulse:
    start: float
    kind: str  # nod | shake | listen_nod | look_away | blink | wink
    amp: float


class ProceduralDynamics:
    """Head pose, blink and gaze for one chunk at a time (seeded, no I/O, bounded state)."""

    def __init__(self, fps: int = 25, seed: int = 0) -> None:
        self.fps = fps
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self._phases = self.rng.uniform(0, 2 * math.pi, size=9)
        self._impulses: deque[_Impulse] = deque(maxlen=16)
        self._next_blink = self._draw_blink_gap()
        self._pending_blink = False
        self._last_nod = -10.0
        self._prev_energy = 0.0
        self._gaze = np.zeros(2, np.float32)
        self._gaze_target = np.zeros(2, np.float32)
        self._next_saccade = 1.0
        self._user_voiced_s = 0.0
        self._user_silence_s = 0.0

    def _draw_blink_gap(self) -> float:
        return float(np.clip(self.rng.gamma(4.0, 1.0), 1.5, 9.0))  # mean 4 s

    def trigger(self, kind: str, amp: float = 1.0) -> None:
        """Start a gesture now (nod, shake, blink, wink, look_away, listen_nod)."""
        self._impulses.append(_Impulse(self.t, kind, amp))

    def listen(self, user_energy: float, dt: float) -> None:
        """User's own audio level (0..1) while listening: nod at their pauses."""
        if user_energy > 0.35:
            self._user_voiced_s += dt
            self._user_silence_s = 0.0
        else:
            self._user_silence_s += dt
            if self._user_voiced_s > 1.0 and self._user_silence_s > 0.3:
                self.trigger("listen_nod", 0.6)
                self._user_voiced_s = 0.0

    def step(
        self, n: int, energy: FloatArray, state: AgentState, events: tuple[ControlEvent, ...] = ()
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(head_pose (n,3) deg, blink (n,), gaze (n,2)) for the next n frames."""
        dt = 1.0 / self.fps
        pose = np.zeros((n, 3), np.float32)
        blink = np.zeros(n, np.float32)
        gaze = np.zeros((n, 2), np.float32)
        by_frame: dict[int, list[ControlEvent]] = {}
        for ev in events:
            by_frame.setdefault(ev.frame, []).append(ev)
        speaking = state == AgentState.SPEAKING
        for i in range(n):
            for ev in by_frame.get(i, ()):
                if ev.name in ("nod", "shake", "blink", "wink", "look_away"):
                    self.trigger(ev.name, ev.intensity)
            t = self.t
            e = float(energy[i]) if i < len(energy) else 0.0
            # stressed syllables: a rise of energy while speaking -> a small nod (refractory 0.45 s)
            if speaking and e - self._prev_energy > 0.12 and e > 0.6 and t - self._last_nod > 0.45:
                self.trigger("nod", 0.35 + 0.4 * min(1.0, e))
                self._last_nod = t
            self._prev_energy = e
            # idle sway: sum of slow sines (smooth noise), larger while speaking
            amp = 1.5 if speaking else 1.0
            yaw = amp * (1.6 * self._wave(t, 0.07, 0) + 0.6 * self._wave(t, 0.23, 1))
            pitch = amp * (1.0 * self._wave(t, 0.09, 2) + 0.4 * self._wave(t, 0.31, 3))
            roll = amp * (0.8 * self._wave(t, 0.05, 4) + 0.3 * self._wave(t, 0.19, 5))
            if state == AgentState.LISTENING:
                roll += 2.0  # a slight attentive tilt
                pitch += 1.0
            elif state == AgentState.THINKING:
                yaw += 3.0
                pitch -= 1.5
            g_target = self._gaze_step(t, state)
            b = 0.0
            for imp in list(self._impulses):
                age = t - imp.start
                if imp.kind in ("nod", "listen_nod"):
                    dur = 0.45
                    if age <= dur:
                        scale = 0.6 if imp.kind == "listen_nod" else 1.0
                        pitch += 5.0 * imp.amp * math.sin(math.pi * age / dur) * scale
                elif imp.kind == "shake":
                    dur = 0.9
                    if age <= dur:
                        yaw += 6.0 * imp.amp * math.sin(2 * math.pi * 2.0 * age) * (1 - age / dur)
                elif imp.kind == "look_away":
                    dur = 1.2
                    if age <= dur:
                        g_target = np.array([0.6, -0.2], np.float32) * imp.amp
                elif imp.kind in ("blink", "wink"):
                    dur = 0.2
                    if age <= dur:
                        b = max(b, _blink_curve(age) * (1.0 if imp.kind == "blink" else 0.0))
                else:
                    dur = 0.0
                if age > 2.0:
                    self._impulses.remove(imp)
            # spontaneous blinks, postponed while a word is loud (not mid-word), at most 1 s
            if t >= self._next_blink:
                if e < 0.5 or t - self._next_blink > 1.0:
                    self.trigger("blink")
                    self._next_blink = t + self._draw_blink_gap()
            self._gaze += (g_target - self._gaze) * 0.35  # fast but smooth saccade
            pose[i] = (yaw, pitch, roll)
            blink[i] = b
            gaze[i] = self._gaze
            self.t += dt
        return pose, blink, gaze

    def _wave(self, t: float, freq: float, k: int) -> float:
        return math.sin(2 * math.pi * freq * t + float(self._phases[k]))

    def _gaze_step(self, t: float, state: AgentState) -> np.ndarray:
        if state == AgentState.THINKING:
            return np.array([0.45, -0.35], np.float32)
        if t >= self._next_saccade:
            spread = 0.08 if state == AgentState.LISTENING else 0.18
            self._gaze_target = self.rng.uniform(-spread, spread, size=2).astype(np.float32)
            self._next_saccade = t + float(self.rng.uniform(0.8, 3.0))
        return self._gaze_target


def _blink_curve(age: float) -> float:
    """Eyelid closure during a 200 ms blink: 60 ms close, 20 ms hold, 120 ms open."""
    if age < 0.06:
        return age / 0.06
    if age < 0.08:
        return 1.0
    return max(0.0, 1.0 - (age - 0.08) / 0.12)


# Face parameters driven by each expression channel (rows EXPRESSIONS).
_FACE = ("smile", "frown", "brow_raise", "brow_furrow", "brow_inner_up", "eye_wide", "cheek_raise", "jaw_open")
_EXPR = {
    "happy": (0.8, 0.0, 0.15, 0.0, 0.0, 0.0, 0.6, 0.05),
    "sad": (0.0, 0.6, -0.1, 0.2, 0.8, 0.0, 0.0, 0.0),
    "surprised": (0.0, 0.0, 0.9, 0.0, 0.2, 0.8, 0.0, 0.25),
    "concerned": (0.0, 0.3, 0.0, 0.6, 0.6, 0.0, 0.0, 0.0),
    "thinking": (0.0, 0.1, 0.2, 0.4, 0.0, 0.0, 0.0, 0.0),
    "angry": (0.0, 0.5, -0.6, 0.9, 0.0, 0.2, 0.0, 0.0),
}
EXPRESSION_SHAPES: FloatArray = np.array([_EXPR[e] for e in EXPRESSIONS], dtype=np.float32)
_FACE_INDEX = np.array([P[f] for f in _FACE])

# Largest change of each parameter between consecutive frames (units per frame).
MAX_STEP = np.full(MOTION_DIM, 0.25, np.float32)
for _n in ("jaw_open", "lip_press", "mouth_wide", "mouth_round", "lip_funnel", "upper_lip_raise"):
    MAX_STEP[P[_n]] = 0.35
for _n in ("blink_l", "blink_r"):
    MAX_STEP[P[_n]] = 0.5
for _n in ("smile", "frown", "brow_raise", "brow_furrow", "brow_inner_up", "eye_wide", "cheek_raise"):
    MAX_STEP[P[_n]] = 0.12
for _n in ("head_yaw", "head_pitch", "head_roll"):
    MAX_STEP[P[_n]] = 1.5
for _n in ("gaze_x", "gaze_y"):
    MAX_STEP[P[_n]] = 0.2
MAX_STEP[P["breath"]] = 0.1

_GESTURE_FACE = {"smile": ("smile", 0.7, 1.2), "raise_brows": ("brow_raise", 0.8, 0.9), "frown": ("frown", 0.6, 1.0),
                 "lean_in": ("eye_wide", 0.3, 1.5)}


class ProceduralMotion:
    """Default motion model: ControlChunk -> MotionChunk by rules (see module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self._prev = np.zeros(MOTION_DIM, np.float32)
        self._t = 0.0
        self._gestures: deque[tuple[float, str, float]] = deque(maxlen=16)
        self._ease_frames = 0

    def interrupt(self) -> None:
        self._ease_frames = 4

    def step(self, control: ControlChunk) -> MotionChunk:
        n, fps = control.n_frames, control.fps
        m = np.zeros((n, MOTION_DIM), np.float32)
        mouth = control.visemes @ VISEME_SHAPES  # (n, 6)
        mouth[:, 0] *= np.clip(0.55 + 0.7 * control.energy, 0.0, 1.2)  # louder -> wider jaw
        m[:, MOUTH_INDEX] = mouth
        face = control.expressions @ EXPRESSION_SHAPES  # (n, 8)
        m[:, _FACE_INDEX] += face
        for ev in control.events:
            if ev.name in _GESTURE_FACE:
                self._gestures.append((self._t + ev.frame / fps, ev.name, ev.intensity))
            elif ev.name == "wink":
                self._gestures.append((self._t + ev.frame / fps, "wink", ev.intensity))
        times = self._t + np.arange(n, dtype=np.float32) / fps
        for start, name, amp in list(self._gestures):
            if name == "wink":
                age = times - start
                curve = np.array([_blink_curve(a * 0.6) if 0 <= a <= 0.33 else 0.0 for a in age], np.float32)
                m[:, P["blink_l"]] += amp * curve
            else:
                param, peak, dur = _GESTURE_FACE[name]
                age = times - start
                env = np.where((age >= 0) & (age <= dur), np.sin(np.pi * np.clip(age / dur, 0, 1)), 0.0)
                m[:, P[param]] += peak * amp * env.astype(np.float32)
            if times[-1] - start > 2.0:
                self._gestures.remove((start, name, amp))
        m[:, P["head_yaw"]] = control.head_pose[:, 0]
        m[:, P["head_pitch"]] = control.head_pose[:, 1]
        m[:, P["head_roll"]] = control.head_pose[:, 2]
        m[:, P["blink_l"]] = np.maximum(m[:, P["blink_l"]], control.blink)
        m[:, P["blink_r"]] = control.blink
        m[:, P["gaze_x"]] = control.gaze[:, 0]
        m[:, P["gaze_y"]] = control.gaze[:, 1]
        m[:, P["breath"]] = np.sin(2 * np.pi * 0.25 * times).astype(np.float32)
        if control.interrupt:
            self._ease_frames = 4
        m = clamp_motion(m)
        out = np.empty_like(m)
        prev = self._prev
        for i in range(n):
            step = MAX_STEP
            if self._ease_frames > 0:  # barge-in: a faster but still smooth return
                step = MAX_STEP * 1.5
                self._ease_frames -= 1
            prev = prev + np.clip(m[i] - prev, -step, step)
            out[i] = prev
        self._prev = prev
        self._t += n / fps
        return MotionChunk(index=control.index, pts=control.pts, fps=fps, values=out)
