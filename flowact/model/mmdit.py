"""MMDiT for chunkwise diffusion forcing over motion latents or video-latent patches.

Each modality stream (target, audio, visemes, intent, reference, ...) has its own weights
(adaLN-Zero modulation, QKV, output projection, MLP) as in SD3's MMDiT; all streams meet in one
joint attention with a block-causal chunk mask (`flowact.model.attention`). Streams with the same
token layout are a `StreamGroup` whose weights are stacked, so S streams cost one batched matmul.
Modulation comes from each chunk's own noise level (diffusion forcing): a token of chunk i is
modulated by t_i; static tokens (reference, text) by t = 0.

Two ways to run the same weights:
- `forward`: the whole sequence at once with the windowed block-causal mask (training).
- `encode_static` + `step_chunk`: streaming with a bounded `KVCache` (inference); numerically the
  same as `forward` on the growing sequence (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from flowact.model.attention import block_causal_mask, joint_attention, rope_apply, rope_tables
from flowact.model.config import MMDiTConfig
from flowact.model.kv_cache import ChunkKV, KVCache

__all__ = ["MMDiT"]

Tensor = torch.Tensor


class StreamGroup(nn.Module):
    """Stacked per-stream block weights for `n` streams that share a token layout."""

    def __init__(self, n: int, dim: int, hidden: int, kv_only: bool = False) -> None:
        super().__init__()
        self.kv_only = kv_only  # static streams in the last block: only their keys/values are used

        def w(*shape: int, fan_in: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape) * fan_in**-0.5)

        self.ada_w = nn.Parameter(torch.zeros(n, dim, 6 * dim))  # adaLN-Zero: blocks start as identity
        self.ada_b = nn.Parameter(torch.zeros(n, 1, 6 * dim))
        self.qkv_w = w(n, dim, 3 * dim, fan_in=dim)
        self.qkv_b = nn.Parameter(torch.zeros(n, 1, 3 * dim))
        if kv_only:
            return
        self.out_w = w(n, dim, dim, fan_in=dim)
        self.out_b = nn.Parameter(torch.zeros(n, 1, dim))
        self.fc1_w = w(n, dim, hidden, fan_in=dim)
        self.fc1_b = nn.Parameter(torch.zeros(n, 1, hidden))
        self.fc2_w = w(n, hidden, dim, fan_in=hidden)
        self.fc2_b = nn.Parameter(torch.zeros(n, 1, dim))

    def modulation(self, c: Tensor) -> Tensor:
        """Per-chunk conditioning (B, C, d) -> (S, B, C, 6d)."""
        b, n_c, d = c.shape
        flat = F.silu(c).reshape(1, b * n_c, d).expand(self.ada_w.shape[0], -1, -1)  # (S, B*C, d)
        return torch.baddbmm(self.ada_b, flat, self.ada_w).view(-1, b, n_c, 6 * d)  # (S, B, C, 6d)


class Block(nn.Module):
    """One MMDiT block over several stream groups."""

    def __init__(self, cfg: MMDiTConfig, group_sizes: list[int], kv_only: int = -1) -> None:
        super().__init__()
        self.dim, self.heads = cfg.dim, cfg.heads
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.groups = nn.ModuleList(StreamGroup(n, cfg.dim, hidden, i == kv_only) for i, n in enumerate(group_sizes))

    def group(self, i: int) -> StreamGroup:
        return cast(StreamGroup, self.groups[i])

    def forward(
        self,
        which: list[int],
        xs: list[Tensor],
        mods: list[Tensor],
        cos: Tensor,
        sin: Tensor,
        ctx: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """xs[i]: (S, B, N, d) for group `which[i]`; returns new xs and this layer's raw (k, v)."""
        d, nh = self.dim, self.heads
        dh = d // nh
        qkvs, sizes = [], []
        for gi, x, m in zip(which, xs, mods, strict=True):
            grp = self.group(gi)
            s, b, n, _ = x.shape
            sh1, sc1 = m[..., :d], m[..., d : 2 * d]  # (S, B, N|1, d) each
            h = F.layer_norm(x, (d,)) * (1 + sc1) + sh1  # (S, B, N, d)
            qkv = torch.baddbmm(grp.qkv_b, h.reshape(s, b * n, d), grp.qkv_w)  # (S, B*N, 3d)
            qkv = qkv.view(s, b, n, 3, nh, dh).permute(3, 1, 4, 0, 2, 5)  # (3, B, H, S, N, dh)
            qkvs.append(qkv.reshape(3, b, nh, s * n, dh))  # (3, B, H, S*N, dh)
            sizes.append(s * n)
        qkv_all = torch.cat(qkvs, dim=3) if len(qkvs) > 1 else qkvs[0]  # (3, B, H, T, dh)
        k_raw, v = qkv_all[1], qkv_all[2]  # (B, H, T, dh) each
        q, k = rope_apply(qkv_all[:2], cos, sin).unbind(0)  # (B, H, T, dh) each
        if ctx is not None:
            k = torch.cat((ctx[0], k), dim=2)  # (B, H, Tc+T, dh)
            v_all = torch.cat((ctx[1], v), dim=2)  # (B, H, Tc+T, dh)
        else:
            v_all = v
        o = joint_attention(q, k, v_all, mask)  # (B, H, T, dh)
        outs: list[Tensor] = []
        for gi, x, m, o_g in zip(which, xs, mods, torch.split(o, sizes, dim=2), strict=True):
            grp = self.group(gi)
            if grp.kv_only:
                outs.append(x)
                continue
            s, b, n, _ = x.shape
            g1, sh2, sc2, g2 = m[..., 2 * d : 3 * d], m[..., 3 * d : 4 * d], m[..., 4 * d : 5 * d], m[..., 5 * d :]
            o_g = o_g.reshape(b, nh, s, n, dh).permute(2, 0, 3, 1, 4).reshape(s, b * n, d)  # (S, B*N, d)
            x = x + g1 * torch.baddbmm(grp.out_b, o_g, grp.out_w).view(s, b, n, d)  # (S, B, N, d)
            h = (F.layer_norm(x, (d,)) * (1 + sc2) + sh2).reshape(s, b * n, d)  # (S, B*N, d)
            h = F.gelu(torch.baddbmm(grp.fc1_b, h, grp.fc1_w), approximate="tanh")  # (S, B*N, hidden)
            x = x + g2 * torch.baddbmm(grp.fc2_b, h, grp.fc2_w).view(s, b, n, d)  # (S, B, N, d)
            outs.append(x)
        return outs, k_raw, v


def timestep_embedding(t: Tensor, dim: int = 256) -> Tensor:
    """Sinusoidal embedding of noise levels t in [0, 1] (any shape) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = (t.float() * 1000.0)[..., None] * freqs  # (..., half)
    return torch.cat((torch.cos(ang), torch.sin(ang)), dim=-1)  # (..., dim)


@dataclass(frozen=True, slots=True)
class _StreamContext:
    """The cache rotated for one chunk position: per-layer (k, v) ready to prepend."""

    cache_id: int
    version: int
    frame0: int
    layers: tuple[tuple[Tensor, Tensor], ...]


class MMDiT(nn.Module):
    """See module docstring. Inputs are normalized per-frame features; see `forward`."""

    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.frame_names = [n for n, _ in cfg.frame_streams]
        self.static_names = [n for n, _ in cfg.static_streams]
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.target_in = nn.Linear(cfg.target_dim, d)
        self.frame_in = nn.ModuleList(nn.Linear(k, d) for _, k in cfg.frame_streams)
        self.static_in = nn.ModuleList(nn.Linear(k, d) for _, k in cfg.static_streams)
        n_static = len(cfg.static_streams)
        self.static_pos = nn.Parameter(torch.randn(max(n_static, 1), cfg.static_tokens, d) * 0.02)
        self.patch_pos = None if cfg.is_motion else nn.Parameter(torch.randn(cfg.target_tokens_per_frame, d) * 0.02)
        # Groups: motion: [frame(target + conditions)]; video: [frame(conditions), patch(target)]; + static.
        if cfg.is_motion:
            sizes = [1 + len(cfg.frame_streams)]
        else:
            sizes = [len(cfg.frame_streams), 1]
        self.n_dynamic = len(sizes)
        self.static_group = len(sizes) if n_static else -1
        if n_static:
            sizes.append(n_static)
        self.blocks = nn.ModuleList(
            Block(cfg, sizes, self.static_group if i == cfg.depth - 1 else -1) for i in range(cfg.depth)
        )
        self.final_ada = nn.Linear(d, 2 * d)
        self.final_out = nn.Linear(d, cfg.target_dim)
        for lin in (self.final_ada, self.final_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self._ctx: _StreamContext | None = None
        self._rope_memo: dict[tuple[int, str], tuple[Tensor, Tensor, Tensor]] = {}
        self._pair_memo: dict[tuple[float, float, int, int, str], tuple[Tensor, list[list[Tensor]]]] = {}
        self._mod_memo: dict[tuple[float, int, int, int, str], tuple[Tensor, list[list[Tensor]]]] = {}

    def _blocks(self) -> list[Block]:
        return [cast(Block, b) for b in self.blocks]

    # ---- inputs -> stream tokens ----
    def _dynamic_tokens(self, x: Tensor, conds: dict[str, Tensor]) -> list[Tensor]:
        """Target (B, N*tpf, target_dim) + per-frame conds (B, N, k) -> dynamic groups (S, B, N', d)."""
        missing = [n for n in self.frame_names if n not in conds]
        if missing:
            raise ValueError(f"missing condition streams: {missing}")
        frames = [lin(conds[n]) for lin, n in zip(self.frame_in, self.frame_names, strict=True)]  # (B, N, d) each
        tgt = self.target_in(x)  # (B, N*tpf, d)
        if self.cfg.is_motion:
            return [torch.stack([tgt, *frames])]  # [(1+S, B, N, d)]
        tpf = self.cfg.target_tokens_per_frame
        assert self.patch_pos is not None
        b, nt, d = tgt.shape
        tgt = (tgt.view(b, nt // tpf, tpf, d) + self.patch_pos).view(1, b, nt, d)  # (1, B, N*tpf, d)
        return [torch.stack(frames), tgt]  # [(S, B, N, d), (1, B, N*tpf, d)]

    def _static_tokens(self, static: dict[str, Tensor]) -> Tensor:
        """Static inputs (B, static_tokens, k) -> (S_static, B, static_tokens, d)."""
        missing = [n for n in self.static_names if n not in static]
        if missing:
            raise ValueError(f"missing static streams: {missing}")
        toks = [lin(static[n]) for lin, n in zip(self.static_in, self.static_names, strict=True)]  # (B, n, d)
        return torch.stack(toks) + self.static_pos[:, None]  # (S_st, B, n, d)

    def _t_embed(self, t: Tensor) -> Tensor:
        return cast(Tensor, self.t_mlp(timestep_embedding(t)))  # (..., d)

    def _layout(self, n_frames: int, frame0: int = 0) -> tuple[list[Tensor], list[Tensor]]:
        """Per dynamic group: token chunk index (local) and absolute frame position, stream-major."""
        cfg = self.cfg
        f = torch.arange(n_frames)
        groups_frames = [f] if cfg.is_motion else [f, f.repeat_interleave(cfg.target_tokens_per_frame)]
        sizes = [1 + len(cfg.frame_streams)] if cfg.is_motion else [len(cfg.frame_streams), 1]
        chunk = [gf // cfg.chunk_frames for gf in groups_frames]
        pos = [(gf + frame0).repeat(s) for gf, s in zip(groups_frames, sizes, strict=True)]
        return chunk, pos

    def _final(self, h: Tensor, c_tok: Tensor) -> Tensor:
        shift, scale = self.final_ada(F.silu(c_tok)).chunk(2, dim=-1)  # (B, N|1, d) each
        return cast(Tensor, self.final_out(F.layer_norm(h, (self.cfg.dim,)) * (1 + scale) + shift))  # (B, N, tdim)

    # ---- full sequence (training, reference generation) ----
    def forward(
        self,
        x: Tensor,
        t: Tensor,
        conds: dict[str, Tensor],
        static: dict[str, Tensor],
        window: int | None = -1,
    ) -> Tensor:
        """Velocity for every target token.

        x: (B, C*F*tpf, target_dim) noisy targets, chunk-major; t: (B, C) noise level per chunk;
        conds[name]: (B, C*F, k) per-frame conditions; static[name]: (B, static_tokens, k).
        window: past chunks visible (-1: the config's bounded window, None: unbounded).
        """
        cfg = self.cfg
        win = cfg.window if window == -1 else window
        n_frames = conds[self.frame_names[0]].shape[1]  # C*F
        if n_frames % cfg.chunk_frames:
            raise ValueError(f"sequence of {n_frames} frames is not a multiple of chunk_frames {cfg.chunk_frames}")
        b = x.shape[0]
        xs = self._dynamic_tokens(x, conds)  # dynamic groups (S, B, N, d)
        which = list(range(self.n_dynamic))
        chunk, pos = self._layout(n_frames)
        c_chunk = self._t_embed(t)  # (B, C, d)
        ids = [ch.repeat(g.shape[0]) for ch, g in zip(chunk, xs, strict=True)]  # (S*N,) per group
        if self.static_group >= 0:
            xs.append(self._static_tokens(static))  # (S_st, B, n, d)
            which.append(self.static_group)
            n_st = xs[-1].shape[0] * xs[-1].shape[2]
            ids.append(torch.full((n_st,), -1))
            pos.append(torch.zeros(n_st, dtype=torch.long))
        chunk_ids = torch.cat(ids)  # (T,)
        static_mask = chunk_ids < 0  # (T,)
        dev = x.device
        mask = block_causal_mask(chunk_ids, win).to(dev)  # (T, T)
        cos, sin = rope_tables(torch.cat(pos), static_mask, cfg.dim // cfg.heads, cfg.rope_theta)  # (T, dh)
        cos, sin = cos.to(dev), sin.to(dev)
        c0 = self._t_embed(torch.zeros(b, 1, device=dev))  # (B, 1, d)
        for blk in self._blocks():
            mods = [blk.group(g).modulation(c_chunk)[:, :, ch] for g, ch in zip(which, chunk, strict=False)]
            if self.static_group >= 0:
                mods.append(blk.group(self.static_group).modulation(c0))  # (S_st, B, 1, 6d)
            xs, _, _ = blk(which, xs, mods, cos, sin, None, mask)
        tgt_group, tgt_chunk = (0, chunk[0]) if cfg.is_motion else (1, chunk[1])
        return self._final(xs[tgt_group][0], c_chunk[:, tgt_chunk])  # (B, N*tpf, target_dim)

    # ---- streaming ----
    def encode_static(self, static: dict[str, Tensor], batch: int = 1) -> KVCache:
        """A fresh cache holding the static (reference/text) tokens' keys and values."""
        if self.static_group < 0:
            return KVCache(None, self.cfg.long_term)
        xs = [self._static_tokens(static)]  # (S_st, B, n, d)
        n_st = xs[0].shape[0] * xs[0].shape[2]
        dev = xs[0].device
        cos, sin = rope_tables(torch.zeros(n_st), torch.ones(n_st, dtype=torch.bool), self.cfg.dim // self.cfg.heads)
        cos, sin = cos.to(dev), sin.to(dev)
        c0 = self._t_embed(torch.zeros(xs[0].shape[1], 1, device=dev))  # (B, 1, d)
        keys, values = [], []
        for blk in self._blocks():
            mods = [blk.group(self.static_group).modulation(c0)]  # (S_st, B, 1, 6d)
            xs, k, v = blk([self.static_group], xs, mods, cos, sin)
            keys.append(k)
            values.append(v)
        entry = ChunkKV(-1, tuple(keys), tuple(values), torch.zeros(n_st, dtype=torch.long))
        return KVCache(entry, self.cfg.long_term)

    def _context(self, cache: KVCache, frame0: int) -> _StreamContext:
        memo = self._ctx
        if memo is not None and memo.cache_id == id(cache) and memo.version == cache.version and memo.frame0 == frame0:
            return memo
        entries = cache.entries()
        pos = torch.cat([e.positions - frame0 for e in entries])  # (Tc,) relative frames
        static = torch.cat([torch.full(e.positions.shape, e.static) for e in entries])  # (Tc,)
        cos, sin = rope_tables(pos, static, self.cfg.dim // self.cfg.heads, self.cfg.rope_theta)  # (Tc, dh)
        dev = entries[0].keys[0].device if entries and entries[0].keys else cos.device
        cos, sin = cos.to(dev), sin.to(dev)
        layers = []
        for li in range(self.cfg.depth):
            k = torch.cat([e.keys[li] for e in entries], dim=2)  # (B, H, Tc, dh)
            v = torch.cat([e.values[li] for e in entries], dim=2)  # (B, H, Tc, dh)
            layers.append((rope_apply(k, cos, sin), v))
        self._ctx = _StreamContext(id(cache), cache.version, frame0, tuple(layers))
        return self._ctx

    def _stream_mods(
        self, t: float, batch: int, which: list[int], device: torch.device
    ) -> tuple[Tensor, list[list[Tensor]]]:
        """Noise-level embedding and every layer's modulation for level t.

        In inference (no grad) they are memoized per (t, batch, weight version): the sampler reuses
        a handful of levels, and the adaLN weights are ~40% of the bytes a step would otherwise read.
        """
        key = (t, batch, self._blocks()[0].group(0).ada_w._version, self.t_mlp[0].weight._version, str(device))
        if not torch.is_grad_enabled() and key in self._mod_memo:
            return self._mod_memo[key]
        c = self._t_embed(torch.full((batch, 1), t, device=device))  # (B, 1, d)
        mods = [[blk.group(g).modulation(c) for g in which] for blk in self._blocks()]  # (S, B, 1, 6d) each
        if not torch.is_grad_enabled():
            if len(self._mod_memo) > 32:
                self._mod_memo.clear()
            self._mod_memo[key] = (c, mods)
        return c, mods

    def _chunk_rope(self, n_chunks: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Token frame positions (relative to the first chunk) and RoPE tables for n new chunks."""
        key = (n_chunks, str(device))
        if key not in self._rope_memo:
            cfg = self.cfg
            _, pos_l = self._layout(n_chunks * cfg.chunk_frames)
            pos = torch.cat(pos_l)  # (T,)
            cos, sin = rope_tables(pos, torch.zeros(pos.shape, dtype=torch.bool), cfg.dim // cfg.heads, cfg.rope_theta)
            self._rope_memo[key] = (pos, cos.to(device), sin.to(device))
        return self._rope_memo[key]

    def _pair_mods(
        self, t_prev: float, t: float, batch: int, which: list[int], device: torch.device
    ) -> tuple[Tensor, list[list[Tensor]]]:
        """Per-token modulation for [previous chunk at t_prev, new chunk at t] (memoized in inference)."""
        key = (t_prev, t, batch, self._blocks()[0].group(0).ada_w._version, str(device))
        memo = self._pair_memo.get(key) if not torch.is_grad_enabled() else None
        if memo is not None:
            return memo
        c_prev, m_prev = self._stream_mods(t_prev, batch, which, device)
        c, m_new = self._stream_mods(t, batch, which, device)
        _, pos_l = self._layout(2 * self.cfg.chunk_frames)
        half = [p.numel() // (2 * g.shape[0]) for p, g in zip(pos_l, m_new[0], strict=True)]  # tokens per chunk
        mods = [[torch.cat((a.expand(-1, -1, n, -1), b.expand(-1, -1, n, -1)), dim=2)  # (S, B, 2N, 6d)
                 for a, b, n in zip(lp, ln, half, strict=True)] for lp, ln in zip(m_prev, m_new, strict=True)]
        if not torch.is_grad_enabled():
            if len(self._pair_memo) > 32:
                self._pair_memo.clear()
            self._pair_memo[key] = (c, mods)
        return c, mods

    def step_fused(
        self, cache: KVCache, prev_index: int, prev_x: Tensor, prev_t: float, prev_conds: dict[str, Tensor],
        x: Tensor, t: float, conds: dict[str, Tensor],
    ) -> tuple[Tensor, ChunkKV]:
        """`step_chunk(prev, encode=True)` + push + `step_chunk(prev + 1, x, t)` in one forward pass.

        The previous chunk's re-encoding and the new chunk's first denoising step share the weight
        reads: the two chunks go through the blocks together with a block-causal mask (the new chunk
        also sees the previous one, and no longer sees the entry that pushing evicts). Returns the new
        chunk's velocity and the previous chunk's `ChunkKV` (the caller pushes it). Same numbers as
        the two separate calls (tested through `ChunkStreamer`).
        """
        cfg = self.cfg
        f = cfg.chunk_frames
        frame0 = prev_index * f
        dev = x.device
        xs = self._dynamic_tokens(torch.cat((prev_x, x), dim=1), {
            n: torch.cat((prev_conds[n], conds[n]), dim=1) for n in self.frame_names
        })  # dynamic groups (S, B, 2N, d)
        which = list(range(self.n_dynamic))
        pos, cos, sin = self._chunk_rope(2, dev)  # (T,), (T, dh) x2 relative to frame0
        chunk_ids, _ = self._layout(2 * f)
        is_new = torch.cat([ch.repeat(g.shape[0]) for ch, g in zip(chunk_ids, xs, strict=True)]) > 0  # (T,)
        ctx = self._context(cache, frame0)
        entries = cache.entries()
        maxlen = cache.long_term.maxlen or 0
        history = list(cache.long_term) + ([cache.short_term] if cache.short_term else [])
        after = history[-maxlen:] if maxlen else []
        keep = torch.cat([torch.full((e.positions.numel(),), e.static or any(e is a for a in after), dtype=torch.bool)
                          for e in entries])  # (Tc,) visible to the new chunk after the push
        new_q = is_new[:, None]  # (T, 1)
        mask = torch.cat((keep[None, :] | ~new_q, new_q | ~is_new[None, :]), dim=1).to(dev)  # (T, Tc+T)
        c, layer_mods = self._pair_mods(float(prev_t), float(t), x.shape[0], which, dev)
        keys, values = [], []
        prev_sel = (~is_new).nonzero().squeeze(1).to(dev)  # (T_prev,)
        for li, blk in enumerate(self._blocks()):
            xs, k, v = blk(which, xs, layer_mods[li], cos, sin, ctx.layers[li], mask)
            keys.append(k.index_select(2, prev_sel))  # (B, H, T_prev, dh)
            values.append(v.index_select(2, prev_sel))
        tgt = xs[0 if cfg.is_motion else 1][0]  # (B, 2N, d)
        out = self._final(tgt[:, tgt.shape[1] // 2 :], c)  # (B, N*tpf, target_dim)
        entry = ChunkKV(prev_index, tuple(keys), tuple(values), pos[~is_new] + frame0, float(prev_t))
        return out, entry

    def step_chunk(
        self, cache: KVCache, index: int, x: Tensor, t: float, conds: dict[str, Tensor], *, encode: bool = False
    ) -> tuple[Tensor, ChunkKV | None]:
        """Velocity for chunk `index` given the cache (its past), and optionally its KV entry.

        x: (B, F*tpf, target_dim) at noise level t; conds[name]: (B, F, k). With `encode=True` the
        chunk's per-layer keys/values are returned as a `ChunkKV` (call with the clean chunk and
        t = 0, then `cache.push(entry)`: the re-encoding step).
        """
        cfg = self.cfg
        frame0 = index * cfg.chunk_frames
        xs = self._dynamic_tokens(x, conds)  # dynamic groups (S, B, N, d)
        which = list(range(self.n_dynamic))
        pos, cos, sin = self._chunk_rope(1, x.device)  # (T,), (T, dh), (T, dh) relative to frame0
        pos = pos + frame0
        ctx = self._context(cache, frame0)
        c, layer_mods = self._stream_mods(float(t), x.shape[0], which, x.device)  # (B, 1, d), per layer (S, B, 1, 6d)
        keys, values = [], []
        for li, blk in enumerate(self._blocks()):
            xs, k, v = blk(which, xs, layer_mods[li], cos, sin, ctx.layers[li])
            if encode:
                keys.append(k)
                values.append(v)
        out = self._final(xs[0 if cfg.is_motion else 1][0], c)  # (B, F*tpf, target_dim)
        entry = ChunkKV(index, tuple(keys), tuple(values), pos, float(t)) if encode else None
        return out, entry
