"""The per-frame motion vector: the interface between motion models and the renderer.

A motion model (procedural rules or the learned diffusion-forcing model) turns a ControlChunk into a
`MotionChunk`: `n_frames` rows of `len(MOTION_PARAMS)` floats. The renderer only ever reads this
vector, so any motion model can drive any renderer.

Units: mouth/face channels are 0..1 activations (brow channels -1..1); head angles are degrees;
gaze is -1..1 (right/down positive); breath is -1..1 (a slow vertical shoulder/neck phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowact.types import FloatArray

MOTION_PARAMS: tuple[str, ...] = (
    "jaw_open",  # 0..1 mouth opening (jaw drop)
    "mouth_wide",  # 0..1 lip corners apart (ee, smile)
    "mouth_round",  # 0..1 lips rounded/pursed (oo, w)
    "lip_press",  # 0..1 lips pressed together (p, b, m)
    "lip_funnel",  # 0..1 lips pushed forward (sh, ch)
    "upper_lip_raise",  # 0..1 upper lip up, teeth on lower lip (f, v)
    "smile",  # 0..1 corners up, cheeks raised
    "frown",  # 0..1 corners down
    "brow_raise",  # -1..1 both brows up (+) or lowered (-)
    "brow_furrow",  # 0..1 inner brows together and down (concern, anger)
    "brow_inner_up",  # 0..1 inner brows up (sadness, concern)
    "blink_l",  # 0..1 left eyelid closed
    "blink_r",  # 0..1 right eyelid closed
    "eye_wide",  # 0..1 eyes widened (surprise)
    "cheek_raise",  # 0..1 cheeks up (genuine smile)
    "head_yaw",  # degrees, + turns to the portrait's left (viewer's right)
    "head_pitch",  # degrees, + nods down
    "head_roll",  # degrees, + tilts clockwise in the image
    "gaze_x",  # -1..1
    "gaze_y",  # -1..1
    "breath",  # -1..1
    "shoulder_raise",  # 0..1 both shoulders up (a shrug); 1 lifts them about a third of the eye distance
)
MOTION_DIM = len(MOTION_PARAMS)
P = {name: i for i, name in enumerate(MOTION_PARAMS)}
"""Index of each motion parameter by name, e.g. `motion[:, P["jaw_open"]]`."""

# Allowed range per parameter (renderers clamp to these).
MOTION_LOW = np.array(
    [-1.0 if n in ("brow_raise", "gaze_x", "gaze_y", "breath") else 0.0 for n in MOTION_PARAMS]
    , dtype=np.float32)
MOTION_HIGH = np.ones(MOTION_DIM, dtype=np.float32)
for _name, _lim in (("head_yaw", 25.0), ("head_pitch", 20.0), ("head_roll", 15.0)):
    MOTION_LOW[P[_name]] = -_lim
    MOTION_HIGH[P[_name]] = _lim


def neutral_motion(n_frames: int) -> FloatArray:
    """All-zero motion (the reference pose, eyes open, mouth closed)."""
    return np.zeros((n_frames, MOTION_DIM), dtype=np.float32)


def clamp_motion(motion: FloatArray) -> FloatArray:
    """Clamp every channel into its documented range."""
    return np.clip(motion, MOTION_LOW, MOTION_HIGH).astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True)
class MotionChunk:
    """Per-frame motion for one control chunk: `values` has shape (n_frames, MOTION_DIM)."""

    index: int
    pts: float
    fps: int
    values: FloatArray

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != MOTION_DIM:
            raise ValueError(f"MotionChunk.values must be (n, {MOTION_DIM}), got {self.values.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])
