"""Motion models: ControlChunk -> per-frame motion parameters for the renderer."""

from flowact.motion.base import MotionModel
from flowact.motion.params import MOTION_DIM, MOTION_PARAMS, MotionChunk, P, clamp_motion, neutral_motion

__all__ = ["MOTION_DIM", "MOTION_PARAMS", "P", "MotionChunk", "MotionModel", "clamp_motion", "neutral_motion"]
