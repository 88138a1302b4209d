"""The learned motion model: chunkwise diffusion forcing over per-frame motion (MMDiT, few steps).

Same contract as the procedural model (`flowact.motion.base.MotionModel`): a `ControlChunk` in,
per-frame `MOTION_PARAMS` out, continuous across calls. Conditions per frame: log-mel + energy
("audio"), viseme weights ("visemes"), expression weights + agent-state one-hot ("intent"); the
static "reference" stream holds the speaker's rest pose (normalized: zeros = the training mean).

The model's face, jaw and breathing are kept; the procedural layer (`ProceduralFace`) supplies the
rest, as for the procedural model: head pose, blinks and gaze from the chunk (the control builder's)
and the face part of gesture events (smile, raise_brows, wink, ...; their head part is already in
the chunk's head pose), so every intent tag works with either motion model.

Control chunks need not match the model's chunk length: frames are generated as they arrive; a
model chunk is sampled with its already-emitted frames pinned (`ChunkStreamer.sample(known=...)`)
and committed to the KV cache once all its frames are known, so any control chunk size works with
no lookahead and no seams. Torch runs on one thread by default (the render thread's budget).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flowact.errors import ModelError
from flowact.model.checkpoint import load_checkpoint
from flowact.model.mmdit import MMDiT
from flowact.model.stream import ChunkStreamer
from flowact.motion.params import MOTION_DIM, MotionChunk, clamp_motion
from flowact.motion.procedural.face import POSE_CHANNELS, ProceduralFace
from flowact.types import AgentState, ControlChunk, FloatArray

__all__ = ["STATES", "LearnedMotion", "control_features"]

STATES: tuple[AgentState, ...] = tuple(AgentState)
_FADE_FRAMES = 4


def control_features(
    mel: FloatArray, energy: FloatArray, visemes: FloatArray, expressions: FloatArray, state: np.ndarray | AgentState
) -> dict[str, FloatArray]:
    """Normalized per-frame model conditions {audio (n, 41), visemes (n, 15), intent (n, 10)}.

    `state` is one AgentState for all frames or an int array (n,) of indices into `STATES`.
    """
    n = len(energy)
    idx = np.full(n, STATES.index(state)) if isinstance(state, AgentState) else np.asarray(state, dtype=np.int64)
    onehot = np.eye(len(STATES), dtype=np.float32)[idx]  # (n, 4)
    audio = np.concatenate([np.clip((mel + 7.0) / 4.0, -3.0, 3.0), energy[:, None]], axis=1)
    return {
        "audio": audio.astype(np.float32),
        "visemes": np.asarray(visemes, np.float32),
        "intent": np.concatenate([np.asarray(expressions, np.float32), onehot], axis=1),
    }


class LearnedMotion:
    """`MotionModel` backed by an MMDiT motion checkpoint (see module docstring)."""

    def __init__(
        self,
        model: MMDiT,
        *,
        mean: FloatArray | None = None,
        std: FloatArray | None = None,
        steps: int = 2,
        shift: float = 1.0,
        seed: int = 0,
        threads: int | None = 1,
        renoise_every: int = 0,
        guidance: float = 1.0,
    ) -> None:
        cfg = model.cfg
        if not cfg.is_motion or cfg.target_dim != MOTION_DIM:
            raise ModelError(f"model preset {cfg.name!r} is not a motion model (target_dim {cfg.target_dim})")
        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.mean = np.zeros(MOTION_DIM, np.float32) if mean is None else np.asarray(mean, np.float32)
        self.std = np.ones(MOTION_DIM, np.float32) if std is None else np.asarray(std, np.float32)
        if self.mean.shape != (MOTION_DIM,) or self.std.shape != (MOTION_DIM,) or (self.std <= 0).any():
            raise ModelError("motion normalization (mean/std) must be MOTION_DIM long with std > 0")
        # guidance != 1 adds an unconditional pass per step (conditions zeroed, as in training dropout)
        self.streamer = ChunkStreamer(model, steps=steps, shift=shift, renoise_every=renoise_every, guidance=guidance)
        self.seed = seed
        self.face = ProceduralFace(seed=seed)
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | Path, steps: int = 2, **kwargs: object) -> LearnedMotion:
        """Load `path` (.safetensors with its .json beside it); `ModelError` if unusable."""
        model, meta = load_checkpoint(path)
        try:
            mean = np.asarray(meta["motion_mean"], np.float32)
            std = np.asarray(meta["motion_std"], np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path}: checkpoint has no motion normalization (motion_mean/motion_std)") from e
        return cls(model, mean=mean, std=std, steps=steps, **kwargs)  # type: ignore[arg-type]

    # ---- MotionModel ----
    def reset(self) -> None:
        self._gen = torch.Generator().manual_seed(self.seed)
        cfg = self.model.cfg
        self.streamer.start({n: torch.zeros(1, cfg.static_tokens, k) for n, k in cfg.static_streams})
        self._pending: list[dict[str, FloatArray]] = []
        self._emitted: torch.Tensor | None = None
        self._noise: torch.Tensor | None = None
        self._last: FloatArray | None = None
        self._fade_from: FloatArray | None = None
        self.face.reset()

    def interrupt(self) -> None:
        # The next chunks carry state=listening; cross-fade from the last frame so nothing jumps.
        self._fade_from = self._last
        self.face.interrupt()

    def step(self, control: ControlChunk) -> MotionChunk:
        if control.interrupt and self._fade_from is None:
            self.interrupt()
        feats = control_features(control.mel, control.energy, control.visemes, control.expressions, control.state)
        f = self.model.cfg.chunk_frames
        out: list[torch.Tensor] = []
        pos = 0
        while pos < control.n_frames:
            k = 0 if self._emitted is None else self._emitted.shape[1]
            take = min(f - k, control.n_frames - pos)
            self._pending.append({n: v[pos : pos + take] for n, v in feats.items()})
            conds = self._conds(f)
            if self._noise is None:
                self._noise = torch.randn(1, f, MOTION_DIM, generator=self._gen)
            x0 = self.streamer.sample(conds, self._noise, known=self._emitted)  # (1, F, D)
            out.append(x0[:, k : k + take])
            if k + take == f:
                self.streamer.commit(x0, conds, self._gen)
                self._pending, self._emitted, self._noise = [], None, None
            else:
                self._emitted = x0[:, : k + take]
            pos += take
        values = torch.cat(out, dim=1)[0].numpy() * self.std + self.mean  # (n, D)
        values[:, POSE_CHANNELS] = 0.0  # head, eyelids and gaze are the chunk's (procedural)
        self.face.gestures(values, control)
        self.face.pose(values, control)
        self.face.advance(control)
        if self._fade_from is not None:
            m = min(_FADE_FRAMES, len(values))
            w = np.sin(0.5 * np.pi * (np.arange(1, m + 1) / (m + 1)))[:, None] ** 2
            values[:m] = (1 - w) * self._fade_from + w * values[:m]
            self._fade_from = None
        values = clamp_motion(values.astype(np.float32))
        self._last = values[-1].copy()
        return MotionChunk(index=control.index, pts=control.pts, fps=control.fps, values=values)

    def _conds(self, f: int) -> dict[str, torch.Tensor]:
        """Pending frames of the current model chunk, padded to F by repeating the last frame."""
        out = {}
        for name in self._pending[0]:
            arr = np.concatenate([p[name] for p in self._pending], axis=0)
            if len(arr) < f:
                arr = np.concatenate([arr, np.repeat(arr[-1:], f - len(arr), axis=0)], axis=0)
            out[name] = torch.from_numpy(arr)[None]  # (1, F, k)
        return out
