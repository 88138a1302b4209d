"""Joint attention over all modality streams with a block-causal (chunk) mask and RoPE over time.

Tokens carry a chunk id (-1 for static tokens: reference, text) and a frame position. A query of
chunk i sees static tokens, its own chunk and up to `window` past chunks; never the future. RoPE
rotates the first half of each head by the frame position (relative to a base frame, so the
streaming cache never needs huge angles); static tokens have that half zeroed, so their scores use
only the position-free half and are the same for every chunk, however long the stream runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["block_causal_mask", "joint_attention", "rope_apply", "rope_tables"]


def block_causal_mask(chunk_ids: torch.Tensor, window: int | None = None) -> torch.Tensor:
    """Boolean (T, T) mask, True = may attend. `chunk_ids` (T,) int, -1 = static token."""
    qi = chunk_ids[:, None]  # (T, 1)
    kj = chunk_ids[None, :]  # (1, T)
    ok = (kj <= qi) & (kj >= 0) & (qi >= 0)  # (T, T) causal between chunks
    if window is not None:
        ok &= kj >= qi - window  # (T, T) bounded memory
    return ok | (kj < 0)  # (T, T) static tokens always visible


def rope_tables(
    positions: torch.Tensor, static: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (T, head_dim // 2) for the rotated half; rows of static tokens are all zero."""
    rot = head_dim // 2
    freqs = theta ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # (rot/2,)
    ang = positions.to(torch.float64)[:, None] * freqs[None, :]  # (T, rot/2)
    cos = torch.cos(ang).repeat(1, 2).float()  # (T, rot)
    sin = torch.sin(ang).repeat(1, 2).float()  # (T, rot)
    keep = (~static).float()[:, None]  # (T, 1)
    return cos * keep, sin * keep


def rope_apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first half of the last axis of x (..., T, head_dim) by the tables (T, head_dim//2)."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]  # (..., T, rot), (..., T, head_dim - rot)
    h = rot // 2
    rotated = torch.cat((-xr[..., h:], xr[..., :h]), dim=-1)  # (..., T, rot)
    return torch.cat((xr * cos + rotated * sin, xp), dim=-1)  # (..., T, head_dim)


def joint_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention (B, H, Tq, D) x (B, H, Tk, D) -> (B, H, Tq, D)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
