"""Noise schedules as pure functions (rectified flow / flow matching, diffusion forcing).

Convention (SD3 / rectified flow): `x_t = (1 - t) * x_0 + t * noise`, t in [0, 1], t = 1 is pure
noise; the model predicts the velocity `v = noise - x_0`, and an Euler step from t to t' is
`x_t' = x_t + (t' - t) * v`. Diffusion forcing gives every chunk its own noise level: independent
levels in training, a per-chunk level in streaming inference (context chunks clean or lightly
re-noised, the chunk being generated walks down its own schedule).

Everything here works on numpy or plain floats and returns numpy float32 arrays; no torch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flowact.types import FloatArray

__all__ = [
    "add_noise",
    "flow_sigmas",
    "shift_sigmas",
    "stream_levels",
    "train_levels",
    "velocity_target",
]


def shift_sigmas(sigmas: npt.ArrayLike, shift: float = 1.0) -> FloatArray:
    """SD3 timestep shift: `s * t / (1 + (s - 1) * t)`. shift > 1 spends more steps at high noise."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    t = np.asarray(sigmas, dtype=np.float64)
    return np.asarray(shift * t / (1.0 + (shift - 1.0) * t), dtype=np.float32)


def flow_sigmas(steps: int, shift: float = 1.0, t_max: float = 1.0) -> FloatArray:
    """`steps + 1` decreasing noise levels from `t_max` to 0 (uniform in t, then shifted)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 < t_max <= 1.0:
        raise ValueError(f"t_max must be in (0, 1], got {t_max}")
    return shift_sigmas(np.linspace(t_max, 0.0, steps + 1), shift)


def train_levels(
    rng: np.random.Generator,
    batch: int,
    n_chunks: int,
    *,
    shift: float = 1.0,
    logit_normal: bool = True,
    clean_context_prob: float = 0.1,
) -> FloatArray:
    """Independent diffusion-forcing noise levels per (sample, chunk), shape (batch, n_chunks).

    Levels are logit-normal (SD3) or uniform, then shifted. With probability `clean_context_prob` a
    chunk's level is drawn small (0..0.1): the streaming regime, where past chunks are (almost) clean.
    """
    if logit_normal:
        t = 1.0 / (1.0 + np.exp(-rng.standard_normal((batch, n_chunks))))
    else:
        t = rng.random((batch, n_chunks))
    t = shift_sigmas(t, shift).astype(np.float64)
    clean = rng.random((batch, n_chunks)) < clean_context_prob
    t = np.where(clean, 0.1 * rng.random((batch, n_chunks)), t)
    return np.asarray(t, dtype=np.float32)


def stream_levels(n_chunks: int, current: float, context: float = 0.0) -> FloatArray:
    """Streaming inference levels: `context` for chunks 0..n-2, `current` for the last one."""
    if n_chunks < 1:
        raise ValueError("n_chunks must be >= 1")
    out = np.full(n_chunks, context, dtype=np.float32)
    out[-1] = current
    return out


def add_noise(x0: FloatArray, noise: FloatArray, t: FloatArray | float) -> FloatArray:
    """`(1 - t) x0 + t noise`; `t` broadcasts against `x0` (give it trailing singleton axes)."""
    t_arr = np.asarray(t, dtype=np.float32)
    return np.asarray((1.0 - t_arr) * x0 + t_arr * noise, dtype=np.float32)


def velocity_target(x0: FloatArray, noise: FloatArray) -> FloatArray:
    """The flow-matching regression target `noise - x0`."""
    return np.asarray(noise - x0, dtype=np.float32)
