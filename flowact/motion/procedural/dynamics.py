"""Head pose, blinks and gaze: what the control builder writes into every `ControlChunk`.

`ProceduralDynamics` (seeded, no I/O, fixed-size state) produces slow idle sway from smooth noise
(sums of incommensurate sines with seeded phases), small nods on stressed syllables (energy and
pitch prominent above their running means) while speaking, small nods at the user's pauses while
listening (driven by the user's own audio level), an attentive head tilt while listening, gaze
aside while thinking, gaze saccades, a slight breathing motion, blinks every 3-5 s (gamma
distributed, mean 4 s) postponed while a word is being spoken, and the head/eye part of gestures
(`GESTURE_TABLE`: nod, shake, blink, look_away, lean_in). States blend through `StateBlend`.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from flowact.motion.procedural.easing import BREATH_HZ, StateBlend, blink_curve, ease_in_out
from flowact.motion.procedural.gestures import GESTURE_TABLE, Gesture, Impulse
from flowact.types import AgentState, ControlEvent, FloatArray

__all__ = ["HEAD_GESTURES", "ProceduralDynamics"]

HEAD_GESTURES = frozenset(k for k, g in GESTURE_TABLE.items() if g.head_s > 0 and k != "listen_nod")
"""Gesture events with a head/eye part (played here; their face part is `ProceduralFace`'s)."""
_NONE = Gesture()


class ProceduralDynamics:
    """Head pose, blink and gaze for one chunk at a time (seeded, no I/O, bounded state)."""

    def __init__(self, fps: int = 25, seed: int = 0) -> None:
        self.fps = fps
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self._phases = self.rng.uniform(0, 2 * math.pi, size=8)
        self._impulses: deque[Impulse] = deque(maxlen=16)
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
        self._blend = StateBlend(fps)

    def _draw_blink_gap(self) -> float:
        return float(np.clip(self.rng.gamma(8.0, 0.5), 1.5, 9.0))  # mean 4 s, mostly 3-5 s

    def trigger(self, kind: str, amp: float = 1.0) -> None:
        """Start a gesture now (nod, listen_nod, shake, blink, wink, look_away, lean_in)."""
        if GESTURE_TABLE.get(kind, _NONE).head_s > 0:
            self._impulses.append(Impulse(self.t, kind, float(min(max(amp, 0.0), 1.0))))

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
                if ev.frame == i and ev.name in HEAD_GESTURES:
                    self.trigger(ev.name, ev.intensity)
            w_listen, w_think, w_speak = self._blend.step(state)
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
            pitch += 0.3 * self._wave(t, BREATH_HZ, 6)  # breathing (the `breath` channel is ProceduralFace's)
            roll += 2.0 * w_listen  # attentive tilt, slightly down-forward
            pitch += 1.0 * w_listen - 1.5 * w_think
            yaw += 3.0 * w_think
            sx, sy = self._saccade(t, 0.08 + 0.1 * (1.0 - w_listen))
            gx, gy = sx * (1.0 - w_think) + 0.45 * w_think, sy * (1.0 - w_think) - 0.35 * w_think
            b = 0.0
            for imp in list(self._impulses):
                age = t - imp.start
                x = age / GESTURE_TABLE[imp.kind].head_s
                if x > 1.0:
                    self._impulses.remove(imp)
                    continue
                if imp.kind in ("nod", "listen_nod"):
                    pitch += 5.0 * imp.amp * math.sin(math.pi * x) * (0.6 if imp.kind == "listen_nod" else 1.0)
                elif imp.kind == "shake":
                    yaw += 5.0 * imp.amp * math.sin(2 * math.pi * 1.6 * age) * math.sin(math.pi * x)
                elif imp.kind == "lean_in":
                    pitch += 3.0 * imp.amp * ease_in_out(x)
                elif imp.kind == "look_away":
                    k = ease_in_out(x)
                    gx, gy = gx * (1 - k) + 0.6 * imp.amp * k, gy * (1 - k) - 0.15 * imp.amp * k
                elif imp.kind == "blink":
                    b = max(b, blink_curve(age) * imp.amp)
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
