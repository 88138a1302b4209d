"""Joint attention over all modality streams with a block-causal (chunk) mask and RoPE over time.

Tokens carry a chunk id (-1 for static tokens: reference, text) and a frame position. A query of
chunk i sees static tokens, its own chunk and up to `window` past chunks; never the future. RoPE
rotates the first half of each head (interleaved pairs) by the frame position (relative to a base frame, so the
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
    """Full-width (T, head_dim) tables for `rope_apply`.

    The first head_dim // 2 dims are rotated as interleaved pairs (2i, 2i+1) (cos, and sin with the
    pair's signs baked in); the rest pass through (cos 1, sin 0). Rows of static tokens have the
    rotated half zeroed.
    """
    rot = head_dim // 2
    freqs = theta ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # (rot/2,)
    ang = positions.to(torch.float64)[:, None] * freqs[None, :]  # (T, rot/2)
    keep = (~static).to(torch.float64)[:, None]  # (T, 1)
    cos = (torch.cos(ang) * keep).repeat_interleave(2, dim=1)  # (T, rot)
    sin = (torch.sin(ang) * keep)[:, :, None] * torch.tensor([-1.0, 1.0], dtype=torch.float64)  # (T, rot/2, 2)
    n = positions.shape[0]
    cos_full = torch.cat((cos, torch.ones(n, head_dim - rot, dtype=torch.float64)), dim=1)  # (T, head_dim)
    sin_full = torch.cat((sin.reshape(n, rot), torch.zeros(n, head_dim - rot, dtype=torch.float64)), dim=1)
    return cos_full.float(), sin_full.float()


def rope_apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, head_dim) by the tables from `rope_tables` (pairs swapped by one flip)."""
    swapped = x.reshape(*x.shape[:-1], -1, 2).flip(-1).flatten(-2)  # (..., T, head_dim): (x1, x0, x3, x2, ...)
    out: torch.Tensor = x * cos + swapped * sin  # (..., T, head_dim)
    return out


def joint_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention (B, H, Tq, D) x (B, H, Tk, D) -> (B, H, Tq, D)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
