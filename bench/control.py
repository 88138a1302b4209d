"""Cost of building one ControlChunk (goal: far below 1 ms) and of ProceduralMotion.step.

Run: .venv/bin/python bench/control.py [--chunks 3000]
Prints the median and p99 per-chunk cost for idle chunks, speech chunks with phoneme timings and
speech without timings (audio-feature visemes), the intent parser throughput and the motion step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from agent.intents import IntentParser
from flowact.control import ControlBuilder
from flowact.motion.procedural import ProceduralMotion
from flowact.types import AudioChunk, PhonemeTiming, SpeechChunk
from flowact.wire import control_from_json, control_to_json


def _speech(seconds: float, sr: int, timed: bool, rng: np.random.Generator) -> SpeechChunk:
    t = np.arange(int(seconds * sr)) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)  # syllable-rate envelope
    audio = (env * np.sin(2 * np.pi * 160 * t) * 9000 + rng.normal(0, 300, len(t))).astype(np.int16)
    phonemes: tuple[PhonemeTiming, ...] = ()
    if timed:
        syms = ["h", "ə", "l", "ˈ", "oʊ", " ", "ð", "ɛ", "ɹ", ","]
        phonemes = tuple(PhonemeTiming(syms[i % len(syms)], i * 0.07, 0.07) for i in range(int(seconds / 0.07)))
    return SpeechChunk(AudioChunk(audio, sr), "hello there " * int(seconds * 2), phonemes=phonemes)


def _time(fn: Callable[[], object], n: int) -> tuple[float, float]:
    costs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        costs.append(time.perf_counter() - t0)
    costs.sort()
    return statistics.median(costs) * 1e6, costs[int(0.99 * (len(costs) - 1))] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=3000)
    args = ap.parse_args()
    n = args.chunks
    rng = np.random.default_rng(0)
    sr = 24000
    print(f"ControlBuilder (25 fps, 4 frames/chunk, {sr} Hz), {n} chunks each; budget per chunk = 160 ms")
    rows = []
    b = ControlBuilder(sample_rate=sr)
    rows.append(("idle chunk", *_time(b.next_chunk, n)))
    for label, timed in (("speech chunk, phoneme timings", True), ("speech chunk, audio visemes", False)):
        b = ControlBuilder(sample_rate=sr)
        b.push_speech(_speech(n * 0.16 + 1.0, sr, timed, rng))
        rows.append((label, *_time(b.next_chunk, n)))
    b = ControlBuilder(sample_rate=sr)
    b.push_speech(_speech(n * 0.16 + 1.0, sr, True, rng))
    chunks = [b.next_chunk() for _ in range(n)]
    motion = ProceduralMotion()
    it = iter(chunks)
    rows.append(("ProceduralMotion.step", *_time(lambda: motion.step(next(it)), n)))
    wire_chunk = chunks[len(chunks) // 2]
    rows.append(("control_to_json", *_time(lambda: control_to_json(wire_chunk), 500)))
    text_json = control_to_json(wire_chunk)
    rows.append(("control_from_json", *_time(lambda: control_from_json(text_json), 500)))
    for label, med, p99 in rows:
        print(f"  {label:30s} median {med:7.1f} us   p99 {p99:7.1f} us   ({med / 160_000 * 100:.3f}% of real time)")
    text = ("Sure [smile] I can help. [emotion:concerned:0.4] That sounds hard [nod] but fixable. " * 12000)
    p = IntentParser()
    t0 = time.perf_counter()
    for k in range(0, len(text), 64):
        p.feed(text[k : k + 64])
    dt = time.perf_counter() - t0
    print(f"  IntentParser: {len(text) / 1e6:.2f} MB in 64-char deltas: {len(text) / dt / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main()
