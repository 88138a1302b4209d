"""Neural core speed on this CPU, one torch thread (no GPU ran here; no GPU figures are printed).

Run: .venv/bin/python bench/neural.py [--chunks 200] [--video-chunks 3]

- motion-s: ms per 8-frame chunk of streaming generation (few Euler steps of the new chunk against
  the KV cache + the re-encode of the clean chunk into the cache) at 1, 2 and 4 steps, and the whole
  `LearnedMotion.step` (features + sampling + denormalize) for 8-frame and 4-frame control chunks.
  Goal: <= 10 ms per 8-frame chunk at 2-4 steps (= 320 ms of video).
- video-b (video-l with --large): the same streaming loop over video-latent patches at a small resolution
  (128x128 px -> 16x16 latent -> 8x8 patches = 64 tokens per latent frame, 2 latent frames per chunk,
  one latent frame = 4 video frames, so a chunk is 8 video frames = 0.32 s), random weights, VAE
  decode not included. Printed as the ratio of compute time to real time (>1 = slower than real time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from flowact.model import ChunkStreamer, MMDiT, preset
from flowact.motion.learned import LearnedMotion
from flowact.types import EXPRESSIONS, N_MELS, VISEMES, AgentState, ControlChunk


def _stream_ms(model: MMDiT, steps: int, chunks: int, warmup: int = 5) -> list[float]:
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    s = ChunkStreamer(model, steps=steps)
    s.start({n: torch.randn(1, cfg.static_tokens, k, generator=g) for n, k in cfg.static_streams})
    per = cfg.chunk_frames * cfg.target_tokens_per_frame
    times = []
    for i in range(chunks + warmup):
        conds = {n: torch.randn(1, cfg.chunk_frames, k, generator=g) for n, k in cfg.frame_streams}
        noise = torch.randn(1, per, cfg.target_dim, generator=g)
        t0 = time.perf_counter()
        s.next_chunk(conds, noise)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return times


def _control(i: int, n: int, rng: np.random.Generator) -> ControlChunk:
    sr, fps = 16000, 25
    return ControlChunk(
        index=i, pts=i * n / fps, fps=fps, n_frames=n, sample_rate=sr,
        audio=np.zeros(n * sr // fps, np.int16), mel=rng.normal(-6, 2, (n, N_MELS)).astype(np.float32),
        energy=rng.random(n).astype(np.float32), visemes=rng.random((n, len(VISEMES))).astype(np.float32),
        expressions=np.zeros((n, len(EXPRESSIONS)), np.float32), head_pose=np.zeros((n, 3), np.float32),
        blink=np.zeros(n, np.float32), gaze=np.zeros((n, 2), np.float32), state=AgentState.SPEAKING,
    )


def _fmt(ts: list[float]) -> str:
    return f"median {statistics.median(ts):7.2f} ms  p95 {np.percentile(ts, 95):7.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--video-chunks", type=int, default=3)
    ap.add_argument("--large", action="store_true", help="also video-l (2.3 B params: ~9 GB of RAM)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("load average (other processes skew timings):", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda available: {torch.cuda.is_available()}"
          " (no GPU ran these numbers)")
    m = MMDiT(preset("motion-s")).eval()
    n_params = sum(p.numel() for p in m.parameters())
    print(f"motion-s: {n_params / 1e6:.2f} M params, chunk = 8 frames = 320 ms of video")
    for steps in (1, 2, 4):
        ts = _stream_ms(m, steps, args.chunks)
        goal = "  (goal <= 10 ms: " + ("met" if statistics.median(ts) <= 10 else "NOT met") + ")" if steps > 1 else ""
        print(f"  streaming chunk, {steps} step(s): {_fmt(ts)}{goal}")
    rng = np.random.default_rng(0)
    for n in (8, 4):
        lm = LearnedMotion(m, steps=2)
        ts = []
        for i in range(args.chunks + 5):
            c = _control(i, n, rng)
            t0 = time.perf_counter()
            lm.step(c)
            if i >= 5:
                ts.append((time.perf_counter() - t0) * 1000)
        print(f"  LearnedMotion.step, {n}-frame control chunks, 2 steps: {_fmt(ts)} per control chunk "
              f"({statistics.median(ts) / n:.2f} ms per frame; real time needs < 40)")
    names = ("video-b", "video-l") if args.large else ("video-b",)
    if not args.large:
        print("video-l skipped (needs ~9 GB of RAM for its weights); run with --large")
    for name in names if args.video_chunks > 0 else ():
        cfg = preset(name, target_tokens_per_frame=64, static_tokens=64)
        vm = MMDiT(cfg).eval()
        n_params = sum(p.numel() for p in vm.parameters())
        for steps in (2, 4):
            ts = _stream_ms(vm, steps, args.video_chunks, warmup=1)
            ratio = statistics.median(ts) / 320.0
            print(f"{name} ({n_params / 1e6:.0f} M params) at 128x128, {steps} steps: "
                  f"{statistics.median(ts):8.0f} ms per 0.32 s chunk = {ratio:5.1f}x slower than real time on this CPU")
        del vm


if __name__ == "__main__":
    main()
