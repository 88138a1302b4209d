"""`ProceduralMotion`, the default `MotionModel`: ControlChunk -> per-frame motion vector by rules.

Visemes -> mouth shapes (`VISEME_SHAPES`, jaw opening modulated by energy), expression weights ->
face (`EXPRESSION_SHAPES`), then the whole `ProceduralFace` layer (gesture faces, the listening /
thinking face, head pose / blink / gaze from the chunk, breathing). A per-frame slew limit
(`MAX_STEP`) keeps every parameter continuous across chunks, state changes and barge-in (interrupt
eases back to the listening pose within a few frames).
"""

from __future__ import annotations

import numpy as np

from flowact.motion.params import MOTION_DIM, MotionChunk, P, clamp_motion
from flowact.motion.procedural.face import ProceduralFace, expression_face
from flowact.motion.visemes import MOUTH_INDEX, VISEME_SHAPES
from flowact.types import ControlChunk, FloatArray

__all__ = ["MAX_STEP", "ProceduralMotion"]

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


class ProceduralMotion:
    """Default motion model: ControlChunk -> MotionChunk by rules (see the module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.face = ProceduralFace(seed=seed)
        self.reset()

    def reset(self) -> None:
        self.face.reset()
        self._prev: FloatArray | None = None
        self._ease_frames = 0

    def interrupt(self) -> None:
        """Barge-in: the next frames move to the listening pose at up to twice the normal rate."""
        self._ease_frames = 6
        self.face.interrupt()

    def step(self, control: ControlChunk) -> MotionChunk:
        n = control.n_frames
        if control.interrupt:
            self.interrupt()
        m = np.zeros((n, MOTION_DIM), np.float32)
        mouth = control.visemes @ VISEME_SHAPES  # (n, 6)
        mouth[:, 0] *= np.clip(0.6 + 0.6 * control.energy, 0.6, 1.2)  # louder -> wider jaw
        m[:, MOUTH_INDEX] = mouth
        expression_face(m, control.expressions)
        face = self.face
        face.gestures(m, control)
        face.state_face(m, control)
        face.pose(m, control)
        face.breath(m, control)
        face.advance(control)
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
        return MotionChunk(index=control.index, pts=control.pts, fps=control.fps, values=out)
