"""Every gesture in one table: its head/eye part and its face part.

A gesture tag (`nod`, `wink`, ...) becomes a `ControlEvent`. Its head/eye part (head pitch or yaw,
gaze, both eyelids) is played by `ProceduralDynamics` into the chunk's `head_pose`, `blink` and
`gaze` (the `ControlChunk` contract); its face part (one motion parameter: smile, brows, one eyelid)
is played from `ControlChunk.events` by `ProceduralFace`, which every motion model applies. So a
gesture looks the same with the procedural and the learned motion model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from flowact.motion.procedural.easing import blink_curve

__all__ = ["GESTURE_TABLE", "Gesture", "Impulse", "face_envelope"]


@dataclass(frozen=True, slots=True)
class Gesture:
    """One gesture: `head_s` seconds of head/eye motion (0: none) and a face part on `face` (a motion
    parameter) peaking at `peak` over `face_s` seconds, shaped as a smooth bump or a blink."""

    head_s: float = 0.0
    face: str | None = None
    peak: float = 0.0
    face_s: float = 0.0
    curve: Literal["bump", "blink"] = "bump"


GESTURE_TABLE: dict[str, Gesture] = {
    "nod": Gesture(head_s=0.45, face="brow_raise", peak=0.15, face_s=0.45),
    "listen_nod": Gesture(head_s=0.45),  # not a tag: the listener's nod at the user's pauses
    "shake": Gesture(head_s=1.0, face="brow_furrow", peak=0.3, face_s=0.9),
    "look_away": Gesture(head_s=1.2),
    "blink": Gesture(head_s=0.2),
    "wink": Gesture(face="blink_l", peak=1.0, face_s=0.34, curve="blink"),
    "lean_in": Gesture(head_s=1.6, face="eye_wide", peak=0.25, face_s=1.6),
    "smile": Gesture(face="smile", peak=0.7, face_s=1.4),
    "frown": Gesture(face="frown", peak=0.6, face_s=1.2),
    "raise_brows": Gesture(face="brow_raise", peak=0.8, face_s=0.9),
    "shrug": Gesture(face="shoulder_raise", peak=1.0, face_s=1.1),
}
"""Gesture name -> its parts. Every gesture of the intent vocabulary has an entry."""


@dataclass(slots=True)
class Impulse:
    """A gesture in progress: started at `start` seconds on the model's own timeline."""

    start: float
    kind: str
    amp: float


def face_envelope(g: Gesture, age: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Activation (0..1, times `g.peak`) of a gesture's face part at each age in seconds."""
    if g.curve == "blink":  # a slower blink (the wink): 200 ms stretched to ~0.33 s
        env = np.array([blink_curve(a * 0.6) for a in age], np.float64)
    else:
        env = np.sin(np.pi * np.clip(age / g.face_s, 0.0, 1.0)) * (age >= 0)
    return (g.peak * env).astype(np.float32)
