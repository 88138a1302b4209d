"""MMDiT configuration and presets (DiT-style: one dict of named sizes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from flowact.errors import ModelError
from flowact.motion.params import MOTION_DIM
from flowact.types import EXPRESSIONS, N_MELS, VISEMES

__all__ = ["AUDIO_DIM", "INTENT_DIM", "PRESETS", "MMDiTConfig", "preset"]

AUDIO_DIM = N_MELS + 1  # log-mel bands + RMS energy per frame
INTENT_DIM = len(EXPRESSIONS) + 4  # expression weights + agent-state one-hot (idle/listening/thinking/speaking)
MOTION_FRAME_STREAMS: tuple[tuple[str, int], ...] = (
    ("audio", AUDIO_DIM), ("visemes", len(VISEMES)), ("intent", INTENT_DIM),
)


@dataclass(frozen=True)
class MMDiTConfig:
    """Sizes and streams of one MMDiT.

    The target stream is per-frame motion latents (`target_tokens_per_frame == 1`, `target_dim ==
    MOTION_DIM`) or video-latent patches (`target_tokens_per_frame` patches of `target_dim` each).
    `frame_streams` are per-frame conditions (one token per frame each); `static_streams` are
    visible to every chunk (`static_tokens` tokens each: reference, optional text).
    """

    name: str
    dim: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0
    chunk_frames: int = 8
    target_dim: int = MOTION_DIM
    target_tokens_per_frame: int = 1
    frame_streams: tuple[tuple[str, int], ...] = MOTION_FRAME_STREAMS
    static_streams: tuple[tuple[str, int], ...] = (("reference", MOTION_DIM),)
    static_tokens: int = 4
    long_term: int = 3  # past chunks in the long-term queue (+1 short-term chunk)
    rope_theta: float = 10000.0
    fps: int = 25

    def __post_init__(self) -> None:
        if self.dim % self.heads or (self.dim // self.heads) % 4:
            raise ModelError(f"dim {self.dim} must split into {self.heads} heads of a multiple of 4")
        if self.chunk_frames < 1 or self.depth < 1 or self.target_tokens_per_frame < 1:
            raise ModelError("chunk_frames, depth and target_tokens_per_frame must be >= 1")

    @property
    def window(self) -> int:
        """Past chunks visible to a chunk (long-term queue + the short-term chunk)."""
        return self.long_term + 1

    @property
    def is_motion(self) -> bool:
        return self.target_tokens_per_frame == 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MMDiTConfig:
        try:
            d = dict(d)
            for key in ("frame_streams", "static_streams"):
                if key in d:
                    d[key] = tuple((str(n), int(k)) for n, k in d[key])
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ModelError(f"invalid model config: {e}") from e


def _video(name: str, dim: int, depth: int, heads: int, tokens: int) -> MMDiTConfig:
    # Video latents: 16-channel VAE latent, 2x2 patches -> 64 numbers per token; `tokens` patches per
    # latent frame (480p: 60x106 latent -> 30x53 = 1590). The reference is one latent frame.
    return MMDiTConfig(
        name=name, dim=dim, depth=depth, heads=heads, chunk_frames=2, target_dim=64,
        target_tokens_per_frame=tokens, static_streams=(("reference", 64),), static_tokens=tokens,
    )


PRESETS: dict[str, MMDiTConfig] = {
    "tiny": MMDiTConfig(name="tiny", dim=32, depth=2, heads=2, mlp_ratio=2.0, static_tokens=2),
    "motion-s": MMDiTConfig(name="motion-s", dim=128, depth=4, heads=4, mlp_ratio=2.0),
    "video-b": _video("video-b", 768, 12, 12, 1590),
    "video-l": _video("video-l", 1024, 24, 16, 1590),
}


def preset(name: str, **overrides: Any) -> MMDiTConfig:
    """A preset by name, with optional field overrides."""
    if name not in PRESETS:
        raise ModelError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
