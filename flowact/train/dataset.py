"""Motion training data: sharded `.npz` clips -> fixed-length windows of whole chunks.

A shard holds one or more clips, concatenated along frames, with `clip_starts` marking where each
clip begins (windows never cross a clip boundary). Arrays per frame: `motion` (n, MOTION_DIM) in
renderer units, `mel` (n, N_MELS), `energy` (n,), `visemes` (n, len(VISEMES)), `expressions`
(n, len(EXPRESSIONS)), `state` (n,) int indices into `flowact.motion.learned.STATES`; plus `fps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from flowact.errors import ModelError
from flowact.motion.learned import control_features
from flowact.motion.params import MOTION_DIM, MOTION_HIGH, MOTION_LOW
from flowact.types import EXPRESSIONS, N_MELS, VISEMES, FloatArray

__all__ = ["Clip", "MotionWindows", "load_clips", "motion_stats", "save_shard"]

_KEYS = ("motion", "mel", "energy", "visemes", "expressions", "state")


@dataclass(frozen=True, slots=True)
class Clip:
    motion: FloatArray
    mel: FloatArray
    energy: FloatArray
    visemes: FloatArray
    expressions: FloatArray
    state: np.ndarray
    fps: int = 25

    def __post_init__(self) -> None:
        n = len(self.motion)
        want = {"motion": (n, MOTION_DIM), "mel": (n, N_MELS), "energy": (n,), "visemes": (n, len(VISEMES)),
                "expressions": (n, len(EXPRESSIONS)), "state": (n,)}
        for k, shape in want.items():
            if getattr(self, k).shape != shape:
                raise ModelError(f"clip array {k} has shape {getattr(self, k).shape}, expected {shape}")

    def __len__(self) -> int:
        return len(self.motion)


def save_shard(path: str | Path, clips: list[Clip]) -> Path:
    """Write clips (same fps) to one compressed `.npz` shard."""
    if not clips:
        raise ValueError("save_shard needs at least one clip")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.concatenate([getattr(c, k) for c in clips]) for k in _KEYS}
    starts = np.cumsum([0] + [len(c) for c in clips[:-1]])
    arrays["clip_starts"] = starts
    arrays["fps"] = np.array(clips[0].fps)
    np.savez_compressed(p, **arrays)  # type: ignore[arg-type]
    return p


def load_clips(root: str | Path) -> list[Clip]:
    """All clips in the `.npz` shards under `root` (a directory or one file)."""
    r = Path(root).expanduser()
    files = sorted(r.rglob("*.npz")) if r.is_dir() else [r]
    if not files or not files[0].is_file():
        raise ModelError(f"no .npz training shards found in {r}")
    clips = []
    for f in files:
        try:
            with np.load(f) as z:
                arrays = {k: z[k] for k in _KEYS}
                starts = list(z["clip_starts"]) + [len(arrays["motion"])]
                fps = int(z["fps"])
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"{f}: not a motion training shard ({e})") from e
        for a, b in zip(starts, starts[1:], strict=False):
            clips.append(Clip(**{k: arrays[k][a:b] for k in _KEYS}, fps=fps))
    return clips


def motion_stats(clips: list[Clip]) -> tuple[FloatArray, FloatArray]:
    """Per-channel mean and std over all frames; std floored at 2% of the channel's range."""
    m = np.concatenate([c.motion for c in clips]).astype(np.float64)
    floor = 0.02 * (MOTION_HIGH - MOTION_LOW)
    return m.mean(0).astype(np.float32), np.maximum(m.std(0), floor).astype(np.float32)


class MotionWindows(Dataset[dict[str, torch.Tensor]]):
    """Windows of `n_chunks * chunk_frames` frames (stride `stride` frames) over the clips."""

    def __init__(
        self, clips: list[Clip], n_chunks: int, chunk_frames: int, mean: FloatArray, std: FloatArray,
        stride: int | None = None,
    ) -> None:
        self.length = n_chunks * chunk_frames
        stride = stride or chunk_frames
        self.feats = []
        self.index: list[tuple[int, int]] = []
        for ci, c in enumerate(clips):
            f = control_features(c.mel, c.energy, c.visemes, c.expressions, c.state)
            f["target"] = ((c.motion - mean) / std).astype(np.float32)
            self.feats.append({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in f.items()})
            self.index.extend((ci, s) for s in range(0, len(c) - self.length + 1, stride))
        if not self.index:
            raise ModelError(f"no clip is long enough for a {self.length}-frame training window")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ci, s = self.index[i]
        return {k: v[s : s + self.length] for k, v in self.feats[ci].items()}
