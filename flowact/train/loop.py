"""Diffusion-forcing training of the motion MMDiT with torch.distributed.

One process works out of the box (gloo, world size 1, file rendezvous in the output directory);
`torchrun --nproc_per_node N -m flowact.cli train ...` scales to N processes/GPUs (NCCL when CUDA
is available) through DDP and a DistributedSampler. Objective: flow matching with an independent
noise level per chunk (`flowact.schedule.train_levels`) under the windowed block-causal mask;
optional condition dropout (for guidance) and Self-Forcing-style steps where the context chunks are
the model's own few-step rollout and only the last chunk is supervised.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from flowact.model.checkpoint import save_checkpoint
from flowact.model.config import preset
from flowact.model.mmdit import MMDiT
from flowact.model.stream import generate_full
from flowact.schedule import train_levels
from flowact.train.dataset import MotionWindows, load_clips, motion_stats

__all__ = ["TrainConfig", "TrainResult", "diffusion_forcing_loss", "plot_losses", "train"]

log = logging.getLogger("flowact.train")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="directory of .npz shards (flowact extract) or one shard")
    out: str = Field("runs/motion", description="output directory: model.safetensors, model.json, loss.png")
    preset: str = "motion-s"
    steps: int = Field(2000, ge=1)
    batch: int = Field(16, ge=1)
    chunks: int = Field(4, ge=1, description="chunks per training window")
    lr: float = Field(3e-4, gt=0)
    warmup: int = Field(50, ge=0)
    seed: int = 0
    shift: float = Field(1.0, gt=0)
    cond_dropout: float = Field(0.1, ge=0, le=1, description="drop all conditions (enables guidance)")
    self_rollout: float = Field(0.0, ge=0, le=1, description="fraction of steps trained on own rollouts")
    rollout_steps: int = Field(2, ge=1, le=8)
    save_every: int = Field(0, ge=0)
    threads: int | None = Field(None, description="torch threads per process (default: torch's)")
    progress: bool = True


@dataclass
class TrainResult:
    checkpoint: Path
    loss_png: Path
    losses: list[float] = field(default_factory=list)
    rank: int = 0  # only rank 0 writes the checkpoint and the PNG


def _init_distributed(out: Path) -> tuple[bool, int, int]:
    """(created_here, rank, world_size). torchrun sets RANK/WORLD_SIZE; else a 1-process gloo group."""
    if dist.is_initialized():
        return False, dist.get_rank(), dist.get_world_size()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group(backend)
    else:
        store = out / ".dist_store"
        store.unlink(missing_ok=True)
        dist.init_process_group("gloo", init_method=f"file://{store.resolve()}", rank=0, world_size=1)
    return True, dist.get_rank(), dist.get_world_size()


def diffusion_forcing_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], levels: torch.Tensor, cond_names: list[str],
    static: dict[str, torch.Tensor], gen: torch.Generator, loss_from_chunk: int = 0, chunk_frames: int = 8,
) -> torch.Tensor:
    """Flow-matching MSE with per-chunk levels (B, C); chunks before `loss_from_chunk` are context."""
    x0 = batch["target"]  # (B, C*F, D)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    t_tok = levels.repeat_interleave(chunk_frames, dim=1)[..., None]  # (B, C*F, 1)
    xt = (1 - t_tok) * x0 + t_tok * noise
    v: torch.Tensor = model(xt, levels, {n: batch[n] for n in cond_names}, static)  # (B, C*F, D)
    err = (v - (noise - x0)) ** 2
    return err[:, loss_from_chunk * chunk_frames :].mean()


def plot_losses(losses: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(losses, lw=0.6, alpha=0.4, label="loss")
    if len(losses) >= 10:
        k = max(5, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k - 1, len(losses)), smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-matching loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def train(cfg: TrainConfig) -> TrainResult:
    """Train (see module docstring); rank 0 writes the checkpoint and the loss curve."""
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    created, rank, world = _init_distributed(out)
    try:
        return _train(cfg, out, rank, world)
    finally:
        if created:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, rank: int, world: int) -> TrainResult:
    torch.manual_seed(cfg.seed)
    mcfg = preset(cfg.preset)
    clips = load_clips(cfg.data)
    mean, std = motion_stats(clips)
    data = MotionWindows(clips, cfg.chunks, mcfg.chunk_frames, mean, std, stride=max(1, mcfg.chunk_frames // 2))
    sampler: DistributedSampler[dict[str, torch.Tensor]] = DistributedSampler(
        data, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    loader = DataLoader(data, batch_size=cfg.batch, sampler=sampler, drop_last=len(data) >= cfg.batch)
    device = torch.device("cuda", rank % torch.cuda.device_count()) if torch.cuda.is_available() else None
    net = MMDiT(mcfg)
    if device is not None:
        net = net.to(device)
    model = DistributedDataParallel(net, device_ids=[device.index] if device is not None else None)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup))
        return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))

    rng = np.random.default_rng(cfg.seed + rank)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 + rank)
    names = [n for n, _ in mcfg.frame_streams]
    bar = None
    if cfg.progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="train", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    meta = {"motion_mean": mean.tolist(), "motion_std": std.tolist(), "preset": cfg.preset, "shift": cfg.shift}
    ckpt = out / "model.safetensors"
    step, epoch = 0, 0
    while step < cfg.steps:
        sampler.set_epoch(epoch)
        epoch += 1
        for batch in loader:
            if step >= cfg.steps:
                break
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            b = batch["target"].shape[0]
            if cfg.cond_dropout:
                drop = torch.from_numpy(rng.random(b) < cfg.cond_dropout)[:, None, None]
                batch = {k: (v.masked_fill(drop, 0.0) if k in names else v) for k, v in batch.items()}
            static = {n: torch.zeros(b, mcfg.static_tokens, k, device=device) for n, k in mcfg.static_streams}
            levels = torch.from_numpy(train_levels(rng, b, cfg.chunks, shift=cfg.shift)).to(batch["target"])
            first = 0
            if cfg.self_rollout and cfg.chunks > 1 and rng.random() < cfg.self_rollout:
                batch, levels, first = _rollout_batch(net, batch, levels, names, static, cfg, mcfg.chunk_frames, gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = diffusion_forcing_loss(model, batch, levels, names, static, gen, first, mcfg.chunk_frames)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if rank == 0 and cfg.save_every and step % cfg.save_every == 0:
                save_checkpoint(net, ckpt, {**meta, "step": step})
    if bar is not None:
        bar.close()
    png = out / "loss.png"
    if rank == 0:
        save_checkpoint(net, ckpt, {**meta, "step": step, "final_loss": float(np.mean(losses[-20:]))})
        plot_losses(losses, png)
    return TrainResult(ckpt, png, losses, rank)


def _rollout_batch(
    net: MMDiT, batch: dict[str, torch.Tensor], levels: torch.Tensor, names: list[str],
    static: dict[str, torch.Tensor], cfg: TrainConfig, f: int, gen: torch.Generator,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """Self-Forcing-style step: context chunks = the model's own rollout; supervise the last chunk."""
    c = cfg.chunks
    was_training = net.training
    net.eval()
    dev = batch["target"].device
    noises = [torch.randn(batch["target"].shape[0], f, net.cfg.target_dim, generator=gen).to(dev) for _ in range(c - 1)]
    conds = {n: batch[n][:, : (c - 1) * f] for n in names}
    ctx = generate_full(net, conds, static, noises, steps=cfg.rollout_steps, shift=cfg.shift)
    net.train(was_training)
    target = torch.cat((ctx, batch["target"][:, (c - 1) * f :]), dim=1)
    levels = levels.clone()
    levels[:, : c - 1] = 0.0
    return {**batch, "target": target}, levels, c - 1
