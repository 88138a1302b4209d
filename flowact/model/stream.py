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
        fuse: bool = True,
    ) -> None:
        if not 1 <= steps <= 64:
            raise ValueError(f"steps must be in 1..64, got {steps}")
        self.model = model
        self.sigmas = flow_sigmas(steps, shift)
        self.renoise_every = renoise_every
        self.renoise_level = renoise_level
        self.guidance = guidance
        self.fuse = fuse and guidance == 1.0
        self._cache: KVCache | None = None
        self._pending: tuple[int, torch.Tensor, float, dict[str, torch.Tensor]] | None = None
        self.index = 0
        self._static: dict[str, torch.Tensor] = {}

    def start(self, static: dict[str, torch.Tensor], batch: int = 1) -> None:
        """Encode the reference (static) streams and forget any history."""
        self._static = static
        with torch.no_grad():
            self._cache = self.model.encode_static(static, batch)
        self._pending = None
        self.index = 0

    @property
    def cache(self) -> KVCache | None:
        """The KV cache, with any deferred re-encoding done first."""
        self.flush()
        return self._cache

    @torch.no_grad()
    def flush(self) -> None:
        """Run a deferred re-encoding now (normally it is fused into the next chunk's first step)."""
        if self._pending is not None and self._cache is not None:
            idx, enc, level, conds = self._pending
            self._pending = None
            _, entry = self.model.step_chunk(self._cache, idx, enc, level, conds, encode=True)
            assert entry is not None
            self._cache.push(entry)

    def reset_history(self) -> None:
        """Drop past chunks (keep the reference); the chunk index keeps counting."""
        self._pending = None
        if self._cache is not None:
            self._cache.clear_chunks()

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
        if self._cache is None:
            raise RuntimeError("ChunkStreamer.start() must be called first")
        if not self.fuse:
            self.flush()
        cache, idx, model = self._cache, self.index, self.model

        def cond_v(x: torch.Tensor, t: float) -> torch.Tensor:
            if self._pending is not None:  # previous chunk's re-encoding + this first step, one pass
                p_idx, p_enc, p_level, p_conds = self._pending
                self._pending = None
                v, entry = model.step_fused(cache, p_idx, p_enc, p_level, p_conds, x, t, conds)
                cache.push(entry)
                return v
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
        """Re-encode the emitted clean chunk (or a lightly re-noised copy) into the cache; advance.

        With `fuse` the re-encoding is deferred and fused into the next chunk's first step.
        """
        if self._cache is None:
            raise RuntimeError("ChunkStreamer.start() must be called first")
        self.flush()
        level, enc = 0.0, x0
        if self.renoise_every and (self.index + 1) % self.renoise_every == 0:
            level = self.renoise_level
            enc = (1 - level) * x0 + level * torch.randn(x0.shape, generator=generator).to(x0.device)
        self._pending = (self.index, enc, level, conds)
        if not self.fuse:
            self.flush()
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
