"""MMDiT / block-causal attention / KV cache / streaming sampler (tiny sizes, CPU)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from flowact.errors import ModelError
from flowact.model import ChunkStreamer, MMDiT, generate_full, load_checkpoint, preset, save_checkpoint
from flowact.model.kv_cache import ChunkKV, KVCache
from flowact.sampler import distill_loss, euler_sample, guided, self_rollout
from flowact.schedule import add_noise, flow_sigmas, shift_sigmas, stream_levels, train_levels

torch.set_num_threads(1)


def random_model(cfg_name: str = "tiny", seed: int = 0, **overrides: object) -> MMDiT:
    """A tiny MMDiT with every weight random (adaLN-Zero and the zero output layer would hide bugs)."""
    torch.manual_seed(seed)
    m = MMDiT(preset(cfg_name, **overrides)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


def inputs(m: MMDiT, b: int, chunks: int, seed: int = 1) -> tuple[dict, dict, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    cfg = m.cfg
    n = chunks * cfg.chunk_frames
    conds = {k: torch.randn(b, n, d, generator=g) for k, d in cfg.frame_streams}
    static = {k: torch.randn(b, cfg.static_tokens, d, generator=g) for k, d in cfg.static_streams}
    per_chunk = cfg.chunk_frames * cfg.target_tokens_per_frame
    noises = [torch.randn(b, per_chunk, cfg.target_dim, generator=g) for _ in range(chunks)]
    return conds, static, noises


def stream(m: MMDiT, conds: dict, static: dict, noises: list[torch.Tensor], steps: int, **kw: object) -> torch.Tensor:
    f = m.cfg.chunk_frames
    s = ChunkStreamer(m, steps=steps, **kw)  # type: ignore[arg-type]
    s.start(static, noises[0].shape[0])
    out = [s.next_chunk({k: v[:, i * f : (i + 1) * f] for k, v in conds.items()}, nz) for i, nz in enumerate(noises)]
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("overrides", [
    {},
    {"static_streams": (("reference", 21), ("text", 16)), "long_term": 1},  # optional text stream, short memory
    {"target_tokens_per_frame": 3, "target_dim": 8, "chunk_frames": 2, "static_streams": (("reference", 8),)},
])
def test_cached_streaming_equals_full_sequence_block_causal(overrides: dict) -> None:
    m = random_model(**overrides)
    chunks = m.cfg.window + 3  # more than the memory window: eviction is exercised
    conds, static, noises = inputs(m, 2, chunks)
    full = generate_full(m, conds, static, noises, steps=3)
    assert full.abs().mean() > 0.3  # a real signal, not zeros
    for fuse in (True, False):  # re-encoding fused into the next chunk's first step, or separate
        cached = stream(m, conds, static, noises, steps=3, fuse=fuse)
        assert full.shape == cached.shape
        torch.testing.assert_close(cached, full, atol=5e-4, rtol=1e-4)
    # Sanity of the oracle: with an unbounded window the full sequence differs (the cache really is bounded).
    last = m.cfg.chunk_frames * m.cfg.target_tokens_per_frame
    unbounded = m(full, torch.zeros(2, chunks), conds, static, window=None)
    bounded = m(full, torch.zeros(2, chunks), conds, static)
    assert not torch.allclose(unbounded[:, -last:], bounded[:, -last:], atol=1e-3)


def test_no_chunk_attends_to_the_future() -> None:
    m = random_model()
    conds, static, noises = inputs(m, 2, 5)
    x = torch.cat(noises, dim=1)
    t = torch.rand(2, 5)
    base = m(x, t, conds, static)
    f = m.cfg.chunk_frames
    for k in range(1, 5):  # perturb chunk k (target, every condition stream, its noise level)
        x2 = x.clone()
        x2[:, k * f :] += torch.randn_like(x2[:, k * f :])
        c2 = {n: v.clone() for n, v in conds.items()}
        for v in c2.values():
            v[:, k * f :] += 1.0
        t2 = t.clone()
        t2[:, k:] = 0.9
        out = m(x2, t2, c2, static)
        torch.testing.assert_close(out[:, : k * f], base[:, : k * f], atol=1e-6, rtol=0)
        assert (out[:, k * f :] - base[:, k * f :]).abs().max() > 1e-2  # the perturbed chunk does change


def test_cache_memory_stays_bounded_over_1000_chunks() -> None:
    m = random_model()
    conds, static, _ = inputs(m, 1, 1)
    s = ChunkStreamer(m, steps=1, renoise_every=3, renoise_level=0.1)
    s.start(static)
    g = torch.Generator().manual_seed(0)
    sizes = []
    for _ in range(1000):
        x = s.next_chunk(conds, torch.randn(1, 8, m.cfg.target_dim, generator=g), g)
        assert s.cache is not None
        sizes.append(s.cache.nbytes)
        assert len(s.cache) <= 1 + m.cfg.long_term + 1
    assert s.cache is not None
    assert torch.isfinite(x).all()
    assert s.cache.chunk_indices == [996, 997, 998, 999]
    assert len(set(sizes[m.cfg.window :])) == 1  # constant once the window is full
    assert max(sizes) == sizes[-1]
    levels = [e.noise_level for e in s.cache.entries() if not e.static]
    assert sorted(set(levels)) == [0.0, pytest.approx(0.1)]  # periodic re-noising of short-term memory


def test_save_load_round_trip_and_bad_checkpoints(tmp_path) -> None:  # type: ignore[no-untyped-def]
    m = random_model(seed=3)
    conds, static, noises = inputs(m, 1, 3)
    x = torch.cat(noises, 1)
    t = torch.rand(1, 3)
    path = save_checkpoint(m, tmp_path / "ck" / "model.safetensors", {"motion_mean": [0.0]})
    assert path.is_file() and path.with_suffix(".json").is_file()
    m2, meta = load_checkpoint(tmp_path / "ck" / "model.json")
    assert meta == {"motion_mean": [0.0]}
    assert m2.cfg == m.cfg
    torch.testing.assert_close(m2(x, t, conds, static), m(x, t, conds, static), atol=0, rtol=0)
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    doc = json.loads(path.with_suffix(".json").read_text())
    doc["config"]["dim"] = 64
    (tmp_path / "ck" / "bad.json").write_text(json.dumps(doc))
    (tmp_path / "ck" / "bad.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="do not match"):
        load_checkpoint(tmp_path / "ck" / "bad.safetensors")
    (tmp_path / "ck" / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="JSON"):
        load_checkpoint(tmp_path / "ck" / "bad")
    (tmp_path / "ck" / "bad.json").write_text(path.with_suffix(".json").read_text())
    (tmp_path / "ck" / "bad.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="safetensors"):
        load_checkpoint(tmp_path / "ck" / "bad.safetensors")


def test_presets_build_and_validate() -> None:
    assert preset("motion-s").window == 4
    with pytest.raises(ModelError, match="unknown model preset"):
        preset("huge")
    with pytest.raises(ModelError):
        preset("tiny", dim=30)
    small_video = preset("video-b", dim=64, depth=1, heads=2, target_tokens_per_frame=4, static_tokens=4)
    m = MMDiT(small_video)
    conds, static, noises = inputs(m, 1, 2)
    v = m(torch.cat(noises, 1), torch.rand(1, 2), conds, static)
    assert v.shape == (1, 2 * small_video.chunk_frames * 4, 64)
    assert dataclasses.asdict(small_video)["target_dim"] == 64


def test_schedules() -> None:
    s = flow_sigmas(4)
    np.testing.assert_allclose(s, [1, 0.75, 0.5, 0.25, 0], atol=1e-7)
    sh = flow_sigmas(4, shift=3.0)
    assert sh[0] == 1 and sh[-1] == 0 and (np.diff(sh) < 0).all() and sh[2] > 0.5
    np.testing.assert_allclose(shift_sigmas(0.5, 3.0), 0.75, atol=1e-6)
    lv = train_levels(np.random.default_rng(0), 64, 5)
    assert lv.shape == (64, 5) and (lv >= 0).all() and (lv <= 1).all() and lv.std() > 0.1
    assert np.unique(lv[:, 0]).size > 50  # independent per chunk and sample
    np.testing.assert_allclose(stream_levels(3, 0.8), [0, 0, 0.8], atol=1e-7)
    x0, nz = np.ones(3, np.float32), np.zeros(3, np.float32)
    np.testing.assert_allclose(add_noise(x0, nz, 0.25), 0.75)
    with pytest.raises(ValueError):
        flow_sigmas(0)


def test_euler_sampler_and_guidance() -> None:
    target = torch.tensor([0.3, -1.2])
    # Exact rectified-flow velocity for a point target: v = (x - target) / t; Euler is exact for it.
    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        return (x - target) / t

    for steps in (1, 2, 4):
        out = euler_sample(v, torch.tensor([1.0, 2.0]), flow_sigmas(steps))
        torch.testing.assert_close(out, target)
    traj: list[torch.Tensor] = []
    euler_sample(v, torch.zeros(2), flow_sigmas(3), trajectory=traj)
    assert len(traj) == 4
    g = guided(lambda x, t: torch.ones(2), lambda x, t: torch.zeros(2), 3.0)
    torch.testing.assert_close(g(torch.zeros(2), 0.5), torch.full((2,), 3.0))
    with pytest.raises(ValueError):
        euler_sample(v, torch.zeros(2), [0.0, 1.0])


@pytest.mark.gpu
def test_streaming_matches_full_sequence_on_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    m = random_model().cuda()
    conds, static, noises = inputs(m, 2, 6)
    conds = {k: v.cuda() for k, v in conds.items()}
    static = {k: v.cuda() for k, v in static.items()}
    noises = [n.cuda() for n in noises]
    full = generate_full(m, conds, static, noises, steps=2)
    torch.testing.assert_close(stream(m, conds, static, noises, steps=2), full, atol=2e-3, rtol=1e-3)


def test_self_rollout_feeds_own_outputs_and_distill_loss_is_zero_on_the_teacher_path() -> None:
    seen: list[int] = []

    def gen(i: int, prev: list[torch.Tensor]) -> torch.Tensor:
        seen.append(len(prev))
        return (prev[-1] + 1) if prev else torch.zeros(2, requires_grad=True)

    out = self_rollout(gen, 4)
    assert seen == [0, 1, 2, 3]
    assert [float(o[0]) for o in out] == [0.0, 1.0, 2.0, 3.0]
    assert not any(o.requires_grad for o in out)
    target = torch.tensor([0.5, -0.5])

    def straight(x: torch.Tensor, t: float) -> torch.Tensor:  # exact flow to a point: Euler is exact
        return (x - target) / t

    noise = torch.randn(3, 2)
    assert float(distill_loss(straight, straight, noise, student_steps=2, teacher_steps=8)) < 1e-10
    wrong = float(distill_loss(lambda x, t: torch.zeros_like(x), straight, noise, student_steps=2, teacher_steps=8))
    assert wrong > 0.1
    with pytest.raises(ValueError, match="multiple"):
        distill_loss(straight, straight, noise, student_steps=3, teacher_steps=8)


def test_kv_cache_window_semantics() -> None:
    def entry(i: int) -> ChunkKV:
        z = torch.zeros(1, 1, 2, 4)
        return ChunkKV(i, (z,), (z,), torch.arange(2) + 2 * i)

    c = KVCache(entry(-1), long_term=3)
    for i in range(6):
        c.push(entry(i))
    assert c.chunk_indices == [2, 3, 4, 5] and c.entries()[0].static
    c.clear_chunks()
    assert c.chunk_indices == [] and len(c) == 1
    short = KVCache(None, long_term=0)
    short.push(entry(0))
    short.push(entry(1))
    assert short.chunk_indices == [1]


def test_learned_motion_rejects_non_motion_models_and_bad_normalization() -> None:
    from flowact.motion.learned import LearnedMotion

    video = MMDiT(preset("video-b", dim=32, depth=1, heads=2, target_tokens_per_frame=2, static_tokens=2))
    with pytest.raises(ModelError, match="not a motion model"):
        LearnedMotion(video)
    with pytest.raises(ModelError, match="normalization"):
        LearnedMotion(MMDiT(preset("tiny")), std=np.zeros(21, np.float32))
    with pytest.raises(ValueError, match="missing condition streams"):
        m = MMDiT(preset("tiny"))
        m(torch.zeros(1, 8, 21), torch.zeros(1, 1), {"audio": torch.zeros(1, 8, 41)}, {})
