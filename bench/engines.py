"""Engine speed on this CPU: ASR and TTS real-time factor, LLM time to first token and tokens/s.

Run: `.venv/bin/python bench/engines.py` (add `--quick` for one repetition). Every number comes from
the real engine through its plugin: faster-whisper (tiny.en shipped; base when its parts are installed),
piper, espeak-ng, Coqui (inside `.venv-coqui` when it exists; only a tiny VITS with random weights
is available offline, so its RTF is the code path's cost, not a real voice's), and the shipped GGUF
models through the real local llama.cpp server and the openai plugin.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXT = "Your order shipped on Monday and it should arrive tomorrow morning before noon."
PROMPTS = [  # a new user turn each call: the system prompt is cached by llama.cpp, the question is not
    "Describe a sunny day at the beach in three sentences.",
    "What should I pack for a weekend hiking trip?",
    "Explain how a rainbow forms, briefly.",
    "Give me three tips for sleeping better.",
    "Why do cats purr? Answer in two sentences.",
]


def _row(kind: str, engine: str, metric: str, value: float, note: str = "") -> dict[str, Any]:
    return {"kind": kind, "engine": engine, "metric": metric, "value": value, "note": note}


async def bench_tts(reps: int) -> tuple[list[dict[str, Any]], Any]:
    import numpy as np

    from plugins.tts_espeak import EspeakTTS
    from plugins.tts_piper import PiperTTS

    rows: list[dict[str, Any]] = []
    speech: Any = None
    for name, tts in (("piper joe-us", PiperTTS(sample_rate=16000)), ("espeak-ng", EspeakTTS(sample_rate=16000))):
        if hasattr(tts, "start"):
            await tts.start()
        best = float("inf")
        dur = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            chunks = [c async for c in tts.synthesize(TEXT)]
            wall = time.perf_counter() - t0
            audio = np.concatenate([c.audio.samples for c in chunks])
            dur = len(audio) / 16000
            best = min(best, wall / dur)
            if name.startswith("piper"):
                speech = audio
        rows.append(_row("tts", name, "RTF", best, f"{dur:.1f} s of audio"))
        await tts.aclose()
    return rows, speech


async def bench_asr(speech: Any, reps: int) -> list[dict[str, Any]]:
    from agent.frames import AudioChunk
    from plugins.asr_faster_whisper import FasterWhisperASR

    models: list[tuple[str, Any]] = [("tiny.en", FasterWhisperASR.Config())]
    try:  # Whisper base is optional: its two parts may not be installed
        cfg = FasterWhisperASR.Config(model="base-offline")
        FasterWhisperASR(cfg)
        models.append(("base", cfg))
    except Exception as e:
        print(f"(whisper base skipped: {e})")
    rows = []
    chunk = AudioChunk(speech, 16000)
    for name, cfg in models:
        asr = FasterWhisperASR(cfg.model_copy(update={"partial_every_s": 60.0}))  # finals only
        t0 = time.perf_counter()
        await asr.start()
        load = time.perf_counter() - t0
        best = float("inf")
        text = ""
        for _ in range(reps):
            t0 = time.perf_counter()
            text = [t async for t in asr.transcribe(chunk) if t.final][0].text
            best = min(best, (time.perf_counter() - t0) / chunk.duration)
        rows.append(_row("asr", f"faster-whisper {name} int8", "RTF", best, f"load {load:.2f} s; '{text[:40]}'"))
        await asr.aclose()
    return rows


async def bench_llm(reps: int) -> list[dict[str, Any]]:
    from agent.frames import TextDelta
    from agent.interfaces import ChatMessage
    from plugins.llm_openai import LocalServerConfig, OpenAILLM, OpenAILLMConfig
    from plugins.llm_openai.config import SHIPPED_MODELS

    rows = []
    system = ChatMessage("system", "You are a helpful assistant.")
    for model in SHIPPED_MODELS:
        llm = OpenAILLM(OpenAILLMConfig(local_server=LocalServerConfig(model=model), max_tokens=96, temperature=0.0,
                                        first_token_timeout_s=120.0))  # the cold call may be slow here
        t0 = time.perf_counter()
        try:
            await llm.start()
        except Exception as e:
            print(f"(llm {model} skipped: {e})")
            await llm.aclose()
            continue
        start_s = time.perf_counter() - t0
        ttfts, rates = [], []
        cold = 0.0
        try:
            for i in range(reps + 1):  # the first call is cold (weights paged in, prompt not cached)
                t0 = time.perf_counter()
                first = None
                n = 0
                async for d in llm.chat([system, ChatMessage("user", PROMPTS[i % len(PROMPTS)])]):
                    if isinstance(d, TextDelta):
                        n += 1  # llama.cpp streams one token per delta
                        if first is None:
                            first = time.perf_counter()
                end = time.perf_counter()
                if first is None:
                    continue
                if i == 0:
                    cold = first - t0
                    continue
                ttfts.append(first - t0)
                rates.append((n - 1) / max(end - first, 1e-6))
        finally:
            await llm.aclose()
        if ttfts:
            rows.append(_row("llm", model, "first token s", min(ttfts),
                             f"new question, cached system prompt; cold {cold:.2f} s; server start {start_s:.1f} s"))
            rows.append(_row("llm", model, "tokens/s", max(rates), "streamed via the openai plugin"))
    return rows


def bench_coqui_here(reps: int) -> list[dict[str, Any]]:
    """Runs inside .venv-coqui: the CoquiTTS plugin on a tiny random-weight VITS (no download)."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    import coqui_worker  # type: ignore[import-not-found]

    return coqui_worker.bench(reps)


def bench_coqui(reps: int) -> list[dict[str, Any]]:
    py = Path(os.environ.get("FLOWACT_COQUI_PYTHON") or ROOT / ".venv-coqui" / "bin" / "python")
    if not py.exists():
        print(f"(coqui skipped: no Coqui venv at {py}; `make coqui` builds it)")
        return []
    r = subprocess.run([str(py), __file__, "--coqui-json", str(reps)], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    if r.returncode != 0:
        print(f"(coqui failed: {r.stderr.strip()[-400:]})")
        return []
    rows: list[dict[str, Any]] = json.loads(r.stdout.strip().splitlines()[-1])
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'kind':<5} {'engine':<28} {'metric':<14} {'value':>8}  note")
    for r in rows:
        print(f"{r['kind']:<5} {r['engine']:<28} {r['metric']:<14} {r['value']:>8.3f}  {r['note']}")


async def main(reps: int) -> None:
    rows, speech = await bench_tts(reps)
    rows += bench_coqui(reps)
    rows += await bench_asr(speech, reps)
    rows += await bench_llm(reps)
    print_table(rows)
    print(f"(best of {reps}; CPU load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while measuring)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--coqui-json":
        print(json.dumps(bench_coqui_here(int(sys.argv[2]))))
        sys.exit(0)
    asyncio.run(main(1 if "--quick" in sys.argv else 3))
