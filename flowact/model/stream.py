"""Chunk-by-chunk generation: streaming with the KV cache, and the full-sequence reference.

`ChunkStreamer` is the inference loop of chunkwise diffusion forcing: for each chunk, a few Euler
steps (`flowact.sampler.euler_sample`) of the new chunk against the cached past, then the clean
result is re-encoded at t = 0 and pushed into the bounded cache. Every `renoise_every` chunks the
short-term entry is encoded from a lightly re-noised copy instead (`renoise_level`), FlowAct's
periodic re-noising of short-term memory that keeps errors from compounding over long streams.

`generate_full` produces the same chunks without any cache, by re-running the whole growing
sequence through `MMDiT.forward` with the windowed block-causal mask: the test oracle.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flowact.model.kv_cache import KVCache
from flowact.model.mmdit import MMDiT
from flowact.sampler import euler_sample, self_rollout
from flowact.schedule import flow_sigmas

__all__ = ["ChunkStreamer", "generate_full"]


class ChunkStreamer:
    """Streaming generator state for one model: cache + chunk index (not thread-safe)."""

    def __init__(
        self,
        model: MMDiT,
        *,
        steps: int = 2,
        shift: float = 1.0,
        renoise_every: int = 0,
        renoise_level: float = 0.05,
        guidance: float = 1.0,
    ) -> None:
        if not 1 <= steps <= 64:
            raise ValueError(f"steps must be in 1..64, got {steps}")
        self.model = model
        self.sigmas = flow_sigmas(steps, shift)
        self.renoise_every = renoise_every
        self.renoise_level = renoise_level
        self.guidance = guidance
        self.cache: KVCache | None = None
        self.index = 0
        self._static: dict[str, torch.Tensor] = {}

    def start(self, static: dict[str, torch.Tensor], batch: int = 1) -> None:
        """Encode the reference (static) streams and forget any history."""
        self._static = static
        with torch.no_grad():
            self.cache = self.model.encode_static(static, batch)
        self.index = 0

    def reset_history(self) -> None:
        """Drop past chunks (keep the reference); the chunk index keeps counting."""
        if self.cache is not None:
            self.cache.clear_chunks()

    @torch.no_grad()
    def sample(
        self,
        conds: dict[str, torch.Tensor],
        noise: torch.Tensor,
        known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample the current chunk (B, F*tpf, target_dim) from `noise` given per-frame `conds`.

        `known` (B, K, target_dim), K < F*tpf, pins the chunk's first K tokens (frames already
        emitted): at every step they are replaced by their exact noisy version at the current
        level (RePaint-style), so the rest of the chunk continues them seamlessly.
        """
        if self.cache is None:
            raise RuntimeError("ChunkStreamer.start() must be called first")
        cache, idx, model = self.cache, self.index, self.model

        def cond_v(x: torch.Tensor, t: float) -> torch.Tensor:
            return model.step_chunk(cache, idx, x, t, conds)[0]

        velocity = cond_v
        if self.guidance != 1.0:
            uncond = {k: torch.zeros_like(v) for k, v in conds.items()}
            w = self.guidance

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                vu = model.step_chunk(cache, idx, x, t, uncond)[0]
                return vu + w * (cond_v(x, t) - vu)

        if known is not None and known.shape[1]:
            n_known, inner = known.shape[1], velocity

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                x = torch.cat(((1 - t) * known + t * noise[:, :n_known], x[:, n_known:]), dim=1)
                return inner(x, t)

            x0 = euler_sample(velocity, noise, self.sigmas)
            return torch.cat((known, x0[:, n_known:]), dim=1)
        return euler_sample(velocity, noise, self.sigmas)

    @torch.no_grad()
    def commit(
        self, x0: torch.Tensor, conds: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> None:
        """Re-encode the emitted clean chunk (or a lightly re-noised copy) into the cache; advance."""
        if self.cache is None:
            raise RuntimeError("ChunkStreamer.start() must be called first")
        level, enc = 0.0, x0
        if self.renoise_every and (self.index + 1) % self.renoise_every == 0:
            level = self.renoise_level
            enc = (1 - level) * x0 + level * torch.randn(x0.shape, generator=generator).to(x0.device)
        _, entry = self.model.step_chunk(self.cache, self.index, enc, level, conds, encode=True)
        assert entry is not None
        self.cache.push(entry)
        self.index += 1

    def next_chunk(
        self, conds: dict[str, torch.Tensor], noise: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample one chunk and commit it: (B, F*tpf, target_dim)."""
        x0 = self.sample(conds, noise)
        self.commit(x0, conds, generator)
        return x0


def generate_full(
    model: MMDiT,
    conds: dict[str, torch.Tensor],
    static: dict[str, torch.Tensor],
    noises: Sequence[torch.Tensor],
    *,
    steps: int = 2,
    shift: float = 1.0,
) -> torch.Tensor:
    """Reference block-causal generation without a cache: (B, C*F*tpf, target_dim).

    Chunk i is sampled by re-running `model.forward` on [clean chunks < i, noisy chunk i] with
    levels [0, ..., 0, t]; only chunk i's velocity is used.
    """
    cfg = model.cfg
    f = cfg.chunk_frames
    per_chunk = f * cfg.target_tokens_per_frame
    sig = flow_sigmas(steps, shift)

    def chunk(i: int, done: list[torch.Tensor]) -> torch.Tensor:
        c_i = {k: v[:, : (i + 1) * f] for k, v in conds.items()}
        b = noises[i].shape[0]

        def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
            seq = torch.cat([*done, x], dim=1)  # (B, (i+1)*per_chunk, target_dim)
            levels = torch.zeros(b, i + 1, device=x.device)
            levels[:, i] = t
            out: torch.Tensor = model(seq, levels, c_i, static)
            return out[:, i * per_chunk :]  # (B, per_chunk, target_dim)

        return euler_sample(velocity, noises[i], sig)

    return torch.cat(self_rollout(chunk, len(noises)), dim=1)
