"""Few-step flow-matching sampling, self-rollout and step distillation. No model imports.

Everything takes callables, so any network (the motion MMDiT, a video DiT, a test lambda) plugs in:

- `VelocityFn`: `(x, t) -> v` for one chunk at noise level `t` (a float); `x_t = (1-t) x0 + t noise`.
- `euler_sample`: Euler over a decreasing sigma list (per chunk: the streaming runner calls it once
  per chunk with that chunk's schedule), optional classifier-free guidance via `guided`.
- `self_rollout`: Self-Forcing-style data: generate chunks autoregressively from the model's own
  outputs (no grad), so training can condition on what the model really produces at inference.
- `distill_loss`: trajectory distillation of a many-step teacher into a 2-4 step student: the
  student's Euler step from `t_k` must land where the teacher's fine ODE trajectory is at `t_{k+1}`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from flowact.schedule import flow_sigmas

__all__ = ["VelocityFn", "distill_loss", "euler_sample", "guided", "self_rollout", "teacher_trajectory"]

VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]


def guided(cond: VelocityFn, uncond: VelocityFn, scale: float) -> VelocityFn:
    """Classifier-free guidance: `v_u + scale * (v_c - v_u)` (scale 1 = conditional only)."""
    if scale == 1.0:
        return cond

    def fn(x: torch.Tensor, t: float) -> torch.Tensor:
        vu = uncond(x, t)
        return vu + scale * (cond(x, t) - vu)

    return fn


def euler_sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    sigmas: Sequence[float] | np.ndarray,
    *,
    trajectory: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Integrate from `sigmas[0]` down to `sigmas[-1]` (usually 1 -> 0) with Euler steps.

    `noise` is the state at `sigmas[0]`. If `trajectory` is given, every state (including the first
    and last) is appended to it.
    """
    s = [float(v) for v in sigmas]
    if len(s) < 2:
        raise ValueError("euler_sample needs at least two sigmas")
    if any(b > a for a, b in zip(s, s[1:], strict=False)):
        raise ValueError(f"sigmas must be non-increasing, got {s}")
    x = noise
    if trajectory is not None:
        trajectory.append(x)
    for t, t_next in zip(s, s[1:], strict=False):
        x = x + (t_next - t) * velocity(x, t)
        if trajectory is not None:
            trajectory.append(x)
    return x


def self_rollout(
    generate: Callable[[int, list[torch.Tensor]], torch.Tensor], n_chunks: int
) -> list[torch.Tensor]:
    """Autoregressive rollout without gradients: chunk i = `generate(i, previous_chunks)`.

    `generate` runs the model's own few-step sampler for chunk i given its earlier outputs; the
    returned (detached) chunks replace ground truth as context in Self-Forcing-style training, so
    the model learns to continue from its own imperfect history (exposure-bias fix).
    """
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(n_chunks):
            out.append(generate(i, out).detach())
    return out


def teacher_trajectory(
    teacher: VelocityFn, noise: torch.Tensor, student_steps: int, teacher_steps: int, shift: float = 1.0
) -> tuple[np.ndarray, list[torch.Tensor]]:
    """The teacher's fine Euler trajectory sampled at the student's sigmas: (sigmas, states)."""
    if student_steps < 1 or teacher_steps % student_steps:
        raise ValueError(f"teacher_steps ({teacher_steps}) must be a multiple of student_steps ({student_steps})")
    fine = flow_sigmas(teacher_steps, shift)
    traj: list[torch.Tensor] = []
    with torch.no_grad():
        euler_sample(teacher, noise, fine, trajectory=traj)
    stride = teacher_steps // student_steps
    return fine[::stride], traj[::stride]


def distill_loss(
    student: VelocityFn,
    teacher: VelocityFn,
    noise: torch.Tensor,
    *,
    student_steps: int = 2,
    teacher_steps: int = 16,
    shift: float = 1.0,
) -> torch.Tensor:
    """Mean squared error between the student's velocity and the teacher trajectory's secant.

    For student step k (t_k -> t_{k+1}) the target velocity is `(x_T(t_{k+1}) - x_T(t_k)) / (t_{k+1} -
    t_k)` on the teacher's trajectory from the same noise, so `student_steps` Euler steps of a perfect
    student reproduce the teacher's `teacher_steps`-step sample.
    """
    sig, states = teacher_trajectory(teacher, noise, student_steps, teacher_steps, shift)
    loss = noise.new_zeros(())
    for k in range(student_steps):
        t, t_next = float(sig[k]), float(sig[k + 1])
        target = (states[k + 1] - states[k]) / (t_next - t)
        loss = loss + torch.mean((student(states[k], t) - target) ** 2)
    return loss / student_steps
