"""Step distillation: a many-step teacher checkpoint -> a 2-4 step student (same architecture).

The student starts as a copy of the teacher and is trained with `flowact.sampler.distill_loss`:
for a training window, the context chunks are ground truth (clean) and the last chunk is sampled
from noise; the student's few Euler steps must follow the teacher's fine trajectory from the same
noise. Single process (distillation is cheap next to training); the result is a normal checkpoint
whose metadata records `sampling_steps` and the teacher.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from flowact.errors import ModelError
from flowact.model.checkpoint import load_checkpoint, save_checkpoint
from flowact.model.mmdit import MMDiT
from flowact.sampler import VelocityFn, distill_loss
from flowact.train.dataset import MotionWindows, load_clips
from flowact.train.loop import plot_losses

__all__ = ["DistillConfig", "DistillResult", "distill", "last_chunk_velocity"]


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: str
    data: str
    out: str = "runs/motion-distilled"
    student_steps: int = Field(2, ge=1, le=4)
    teacher_steps: int = Field(16, ge=2, le=64)
    steps: int = Field(500, ge=1)
    batch: int = Field(16, ge=1)
    chunks: int = Field(3, ge=1)
    lr: float = Field(1e-4, gt=0)
    seed: int = 0
    progress: bool = True


@dataclass
class DistillResult:
    checkpoint: Path
    loss_png: Path
    losses: list[float] = field(default_factory=list)


def last_chunk_velocity(net: MMDiT, batch: dict[str, torch.Tensor], static: dict[str, torch.Tensor]) -> VelocityFn:
    """Velocity of the window's last chunk given its ground-truth (clean) earlier chunks."""
    cfg = net.cfg
    f = cfg.chunk_frames
    ctx = batch["target"][:, :-f]  # (B, (C-1)*F, D)
    b, c = ctx.shape[0], batch["target"].shape[1] // f
    conds = {n: batch[n] for n, _ in cfg.frame_streams}

    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        levels = torch.zeros(b, c)
        levels[:, -1] = t
        out: torch.Tensor = net(torch.cat((ctx, x), dim=1), levels, conds, static)
        return out[:, -f:]  # (B, F, D)

    return v


def distill(cfg: DistillConfig) -> DistillResult:
    if cfg.teacher_steps % cfg.student_steps:
        raise ModelError("teacher_steps must be a multiple of student_steps")
    torch.manual_seed(cfg.seed)
    teacher, meta = load_checkpoint(cfg.teacher)
    if "motion_mean" not in meta or "motion_std" not in meta:
        raise ModelError(f"{cfg.teacher}: not a motion checkpoint (no normalization in its metadata)")
    mean, std = np.asarray(meta["motion_mean"], np.float32), np.asarray(meta["motion_std"], np.float32)
    student = copy.deepcopy(teacher).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    mcfg = teacher.cfg
    data = MotionWindows(load_clips(cfg.data), cfg.chunks, mcfg.chunk_frames, mean, std)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch, shuffle=True, drop_last=len(data) >= cfg.batch)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    shift = float(meta.get("shift", 1.0))
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="distill", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    while len(losses) < cfg.steps:
        for batch in loader:
            if len(losses) >= cfg.steps:
                break
            b = batch["target"].shape[0]
            static = {n: torch.zeros(b, mcfg.static_tokens, k) for n, k in mcfg.static_streams}
            noise = torch.randn(b, mcfg.chunk_frames, mcfg.target_dim, generator=gen)
            loss = distill_loss(
                last_chunk_velocity(student, batch, static), last_chunk_velocity(teacher, batch, static), noise,
                student_steps=cfg.student_steps, teacher_steps=cfg.teacher_steps, shift=shift,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if bar is not None:
        bar.close()
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(student.eval(), out / "model.safetensors", {
        **meta, "sampling_steps": cfg.student_steps, "teacher_steps": cfg.teacher_steps,
        "distilled_from": str(cfg.teacher),
    })
    return DistillResult(ckpt, plot_losses(losses, out / "distill_loss.png"), losses)
