"""Procedural motion: every rule that makes a portrait look alive and attentive, in one place.

- `easing`: the one easing of agent states (`StateBlend`, `STATE_EASE_S`) and shared curves;
- `gestures`: every gesture's head/eye part and face part (`GESTURE_TABLE`);
- `dynamics`: `ProceduralDynamics`, the head pose, blinks and gaze the control builder writes into
  each `ControlChunk` (idle sway, stress and listening nods, saccades, blinks, head gestures);
- `face`: `ProceduralFace`, the layer every motion model applies (gesture faces, listening /
  thinking face, head pose / blink / gaze from the chunk, breathing);
- `motion`: `ProceduralMotion`, the default motion model (mouth from visemes, face from
  expressions, the face layer, a slew limit).
"""

from flowact.audio import frame_pitch
from flowact.motion.procedural.dynamics import HEAD_GESTURES, ProceduralDynamics
from flowact.motion.procedural.easing import BREATH_HZ, STATE_EASE_S, StateBlend
from flowact.motion.procedural.face import EXPRESSION_SHAPES, FACE_GESTURES, ProceduralFace
from flowact.motion.procedural.gestures import GESTURE_TABLE, Gesture
from flowact.motion.procedural.motion import MAX_STEP, ProceduralMotion

__all__ = [
    "BREATH_HZ",
    "EXPRESSION_SHAPES",
    "FACE_GESTURES",
    "GESTURE_TABLE",
    "HEAD_GESTURES",
    "MAX_STEP",
    "STATE_EASE_S",
    "Gesture",
    "ProceduralDynamics",
    "ProceduralFace",
    "ProceduralMotion",
    "StateBlend",
    "frame_pitch",
]
