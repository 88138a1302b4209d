"""The one easing of agent states, and the small curves every procedural behaviour uses.

`StateBlend` turns the agent state of each frame into eased weights of the listening, thinking and
speaking behaviours (first-order, time constant `STATE_EASE_S`): the control builder's head, gaze
and blinks and the motion models' listening/thinking face all blend through it, so a state change
is never popped and both sides of a `ControlChunk` follow the same state with the same lag.
"""

from __future__ import annotations

import math

from flowact.types import AgentState

__all__ = ["BREATH_HZ", "STATE_EASE_S", "StateBlend", "blink_curve", "ease_in_out"]

STATE_EASE_S = 0.4
"""Time constant (s) of the blend between idle / listening / thinking / speaking behaviours."""
BREATH_HZ = 0.22
"""Breathing rate (Hz): the head's slight breathing pitch and the `breath` channel share it."""


class StateBlend:
    """Eased weights (listening, thinking, speaking), each 0..1, advanced one frame at a time."""

    __slots__ = ("_a", "fps", "listening", "speaking", "thinking")

    def __init__(self, fps: float) -> None:
        self.fps = 0.0
        self._a = 0.0
        self.set_fps(fps)
        self.reset()

    def set_fps(self, fps: float) -> None:
        """Frames per second of the `step` calls (the weights are kept)."""
        if fps != self.fps:
            self.fps = fps
            self._a = 1.0 - math.exp(-1.0 / (fps * STATE_EASE_S))

    def reset(self) -> None:
        self.listening = self.thinking = self.speaking = 0.0

    def step(self, state: AgentState) -> tuple[float, float, float]:
        """Advance one frame towards `state`; returns (listening, thinking, speaking)."""
        a = self._a
        self.listening += (float(state == AgentState.LISTENING) - self.listening) * a
        self.thinking += (float(state == AgentState.THINKING) - self.thinking) * a
        self.speaking += (float(state == AgentState.SPEAKING) - self.speaking) * a
        return self.listening, self.thinking, self.speaking


def ease_in_out(x: float) -> float:
    """Smooth 0 -> 1 -> 0 bump over x in [0, 1] (zero slope at both ends)."""
    return 0.5 - 0.5 * math.cos(2 * math.pi * min(max(x, 0.0), 1.0))


def blink_curve(age: float) -> float:
    """Eyelid closure during a 200 ms blink: 60 ms close, 20 ms hold, 120 ms open."""
    if age < 0.0:
        return 0.0
    if age < 0.06:
        return age / 0.06
    if age < 0.08:
        return 1.0
    return max(0.0, 1.0 - (age - 0.08) / 0.12)
