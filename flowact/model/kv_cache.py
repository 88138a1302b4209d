"""A typed, bounded KV cache for streaming chunkwise generation (the FlowAct memory bank).

Layout: the static entry (reference/text tokens, always visible), a long-term queue of up to
`long_term` past chunks, and the short-term entry (the last emitted chunk, re-encoded clean, or
lightly re-noised every `renoise_every` chunks by the caller). Pushing a chunk moves the previous
short-term entry into the long-term queue; the oldest long-term entry falls out. Size is bounded
by construction: `1 + long_term + 1` entries. Keys are stored un-rotated with their frame
positions, so RoPE is applied relative to the current chunk and never sees huge positions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

__all__ = ["ChunkKV", "KVCache"]


@dataclass(frozen=True, slots=True)
class ChunkKV:
    """Per-layer keys/values of one chunk's tokens (or of the static tokens, `index` = -1)."""

    index: int
    keys: tuple[torch.Tensor, ...]  # per layer (B, H, T, head_dim), un-rotated
    values: tuple[torch.Tensor, ...]  # per layer (B, H, T, head_dim)
    positions: torch.Tensor  # (T,) frame index of each token (ignored for static tokens)
    noise_level: float = 0.0  # level the chunk was encoded at (0 = clean)

    @property
    def static(self) -> bool:
        return self.index < 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


class KVCache:
    """Static entry + bounded long-term queue + short-term entry (see module docstring)."""

    def __init__(self, static: ChunkKV | None, long_term: int = 3) -> None:
        if long_term < 0:
            raise ValueError("long_term must be >= 0")
        self.static = static
        self.long_term: deque[ChunkKV] = deque(maxlen=long_term)
        self.short_term: ChunkKV | None = None
        self.version = 0  # bumped on every change; lets callers memoize derived tensors

    def push(self, entry: ChunkKV) -> None:
        """Add the newest emitted chunk; the previous one moves to the long-term queue."""
        if self.short_term is not None and self.long_term.maxlen:
            self.long_term.append(self.short_term)
        self.short_term = entry
        self.version += 1

    def clear_chunks(self) -> None:
        """Forget the history but keep the static (reference) entry."""
        self.long_term.clear()
        self.short_term = None
        self.version += 1

    def entries(self) -> list[ChunkKV]:
        """Visible entries, oldest first: static, long-term..., short-term."""
        out = [self.static] if self.static is not None else []
        out.extend(self.long_term)
        if self.short_term is not None:
            out.append(self.short_term)
        return out

    @property
    def chunk_indices(self) -> list[int]:
        return [e.index for e in self.entries() if not e.static]

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries())

    def __len__(self) -> int:
        return len(self.entries())
