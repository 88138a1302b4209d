"""`ProceduralFace`: the procedural layer every motion model applies on top of its face.

From one `ControlChunk` it plays (each part can be applied on its own):
- `gestures`: the face part of gesture events (`GESTURE_TABLE`: smile, frown, raise_brows, wink, the
  brow of a nod, ...), added to the face;
- `state_face`: an attentive face while listening and a puzzled brow while thinking, eased through
  the one `StateBlend`;
- `pose`: the head pose, blinks and gaze the control builder computed (the wink's eyelid is kept);
- `breath`: the slow breathing channel.
`ProceduralMotion` uses all four; `LearnedMotion` keeps its learned face, jaw and breathing and
applies `gestures` and `pose`, so every intent tag works with either model.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from flowact.motion.params import P
from flowact.motion.procedural.easing import BREATH_HZ, StateBlend
from flowact.motion.procedural.gestures import GESTURE_TABLE, Impulse, face_envelope
from flowact.types import EXPRESSIONS, ControlChunk, FloatArray

__all__ = ["EXPRESSION_SHAPES", "FACE_GESTURES", "POSE_CHANNELS", "ProceduralFace", "expression_face"]

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
FACE_GESTURES = frozenset(k for k, g in GESTURE_TABLE.items() if g.face is not None)
"""Gesture events with a face part (played here; their head/eye part is `ProceduralDynamics`')."""
POSE_CHANNELS = np.array([P[n] for n in ("head_yaw", "head_pitch", "head_roll", "blink_l", "blink_r", "gaze_x",
                                        "gaze_y")])
"""The motion parameters `ProceduralFace.pose` owns (head, eyelids, gaze)."""
# Attentive face while listening, puzzled brow while thinking (added on top, eased by state weight).
_LISTEN_FACE = {"brow_raise": 0.12, "eye_wide": 0.08, "smile": 0.08}
_THINK_FACE = {"brow_furrow": 0.15, "lip_press": 0.15}


def expression_face(m: FloatArray, expressions: FloatArray) -> None:
    """Add the face of the expression weights (n, len(EXPRESSIONS)) to motion `m` (n, MOTION_DIM)."""
    m[:, _FACE_INDEX] += expressions @ EXPRESSION_SHAPES


class ProceduralFace:
    """Procedural face layer over any motion model (see the module docstring); bounded state."""

    def __init__(self, fps: float = 25, seed: int = 0) -> None:
        self.seed = seed
        self._blend = StateBlend(fps)
        self.reset()

    def reset(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._breath_phase = float(rng.uniform(0, 2 * math.pi))
        self._gestures: deque[Impulse] = deque(maxlen=16)
        self._blend.reset()
        self._t = 0.0

    def interrupt(self) -> None:
        """Barge-in: gestures in progress stop (the caller's easing hides the cut)."""
        self._gestures.clear()

    def times(self, control: ControlChunk) -> np.ndarray:
        """Timeline of this chunk's frames in seconds (the layer's own clock, advanced by `advance`)."""
        return self._t + np.arange(control.n_frames, dtype=np.float64) / control.fps

    def advance(self, control: ControlChunk) -> None:
        """Move the layer's clock past this chunk (call once per chunk, after the parts)."""
        self._t += control.n_frames / control.fps

    def gestures(self, m: FloatArray, control: ControlChunk) -> None:
        """Add the face part of the chunk's gesture events (and of those still in progress) to `m`."""
        times = self.times(control)
        for ev in control.events:
            if ev.name in FACE_GESTURES:
                self._gestures.append(Impulse(self._t + ev.frame / control.fps, ev.name, ev.intensity))
        for imp in list(self._gestures):
            g = GESTURE_TABLE[imp.kind]
            assert g.face is not None
            m[:, P[g.face]] += np.float32(imp.amp) * face_envelope(g, times - imp.start)
            if times[-1] - imp.start > g.face_s:
                self._gestures.remove(imp)

    def state_face(self, m: FloatArray, control: ControlChunk) -> None:
        """Add the eased listening / thinking face to `m`."""
        self._blend.set_fps(control.fps)
        for i in range(control.n_frames):
            w_listen, w_think, _ = self._blend.step(control.state)
            for name, v in _LISTEN_FACE.items():
                m[i, P[name]] += v * w_listen
            for name, v in _THINK_FACE.items():
                m[i, P[name]] += v * w_think

    @staticmethod
    def pose(m: FloatArray, control: ControlChunk) -> None:
        """Head pose, blinks and gaze from the chunk (a wink already on the left eyelid stays)."""
        m[:, P["head_yaw"]] = control.head_pose[:, 0]
        m[:, P["head_pitch"]] = control.head_pose[:, 1]
        m[:, P["head_roll"]] = control.head_pose[:, 2]
        m[:, P["blink_l"]] = np.maximum(m[:, P["blink_l"]], control.blink)
        m[:, P["blink_r"]] = control.blink
        m[:, P["gaze_x"]] = control.gaze[:, 0]
        m[:, P["gaze_y"]] = control.gaze[:, 1]

    def breath(self, m: FloatArray, control: ControlChunk) -> None:
        """The slow breathing channel."""
        phase = 2 * np.pi * BREATH_HZ * self.times(control) + self._breath_phase
        m[:, P["breath"]] = np.sin(phase).astype(np.float32)
