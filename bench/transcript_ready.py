"""Last word -> transcript ready, with and without early transcription (VAD + end of turn + ASR only).

Run: `.venv/bin/python bench/transcript_ready.py [--rounds 2] [--early-ms 60]`. Each spoken question
(piper; the lines of configs/bench_script.yaml and the complete sentences of tests/fixtures/
turn_speech.py) is fed in real time through the VAD and the end-of-turn policy of `--config`
(Silero + Smart Turn in configs/local.yaml) into the session's Listener with tiny.en, alternately with
`early_asr_ms` off and on, so both see the same load. Prints, per variant, the medians of
`endpoint` (last voiced frame -> end of turn) and `ready` (last voiced frame -> the transcript
reaches the conversation), and how many early transcripts were used or dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from agent import load_config  # noqa: E402
from agent.events import SessionEvent, UserMessage, UserSpeechEnded  # noqa: E402
from agent.fanout import Fanout, TaskOwner  # noqa: E402
from agent.frames import AudioChunk  # noqa: E402
from agent.interfaces import ASR, VAD  # noqa: E402
from agent.listening import Listener  # noqa: E402
from agent.metrics import SessionMetrics  # noqa: E402
from flowact.clock import RealClock  # noqa: E402
from tests.fixtures import turn_speech  # noqa: E402
from tests.fixtures.speech import RATE, speech, with_silences  # noqa: E402


class Mic:
    """PCM in 20 ms chunks at real-time pace."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm

    async def audio(self) -> AsyncIterator[AudioChunk]:
        clock, step = RealClock(), RATE // 50
        t0 = clock.now()
        for k, i in enumerate(range(0, len(self.pcm), step)):
            await clock.sleep_until(t0 + k * step / RATE)
            yield AudioChunk(np.ascontiguousarray(self.pcm[i : i + step]), RATE, pts=i / RATE)


async def one(pcm: np.ndarray, vad: VAD, asr: ASR) -> tuple[float, float, dict[str, int]] | None:
    """(endpoint s, ready s, early counts) for one utterance, from the last voiced frame."""
    clock = RealClock()
    marks: dict[str, float] = {}

    def emit(event: SessionEvent) -> None:
        if isinstance(event, UserSpeechEnded) and event.last_voiced_t is not None:
            marks.setdefault("word", event.last_voiced_t)
            marks.setdefault("end", event.t)
        elif isinstance(event, UserMessage) and event.t_final is not None:
            marks.setdefault("ready", event.t_final)

    metrics = SessionMetrics(clock, fps=25)
    listener = Listener(emit=emit, fanout=Fanout(TaskOwner()), clock=clock, metrics=metrics,
                        builder_audio=lambda _: None, vad=vad, asr=asr)
    await listener.audio_loop(Mic(pcm))
    if listener.asr_task is not None:
        await listener.asr_task
    await listener.aclose()
    if not {"word", "end", "ready"} <= marks.keys():
        return None
    return marks["end"] - marks["word"], marks["ready"] - marks["word"], dict(metrics.early_asr)


async def main(args: argparse.Namespace, lines: list[str]) -> None:
    variants = {"off": None, "on": args.early_ms}
    asr = load_config(args.config).plugin("asr").build()  # type: ignore[union-attr]
    await asr.start()
    await asr.prepare()
    results: dict[str, list[tuple[float, float, dict[str, int]]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for text in lines:
            pcm, _ = with_silences([0.4, speech("piper", text), 2.0])
            for name, early in variants.items():
                cfg = load_config(args.config, overrides={"vad.end_of_turn.early_asr_ms": early})
                vad = cfg.plugin("vad").build(sample_rate=RATE)  # type: ignore[union-attr]
                await vad.start()
                res = await one(pcm, vad, asr)
                await vad.aclose()
                if res is not None:
                    results[name].append(res)
                    print(f"round {r} early {name:3}: endpoint {res[0]:.3f} ready {res[1]:.3f} "
                          f"early {res[2]}  {text!r}", flush=True)
    for name, rows in results.items():
        used = sum(x[2]["used"] for x in rows)
        dropped = sum(x[2]["dropped"] for x in rows)
        print(f"early_asr {name}: n={len(rows)} endpoint_p50={statistics.median(x[0] for x in rows):.3f} "
              f"ready_p50={statistics.median(x[1] for x in rows):.3f} early used={used} dropped={dropped}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "local.yaml"))
    ap.add_argument("--script", default=str(ROOT / "configs" / "bench_script.yaml"))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--early-ms", type=int, default=60)
    a = ap.parse_args()
    script = [str(x["text"] if isinstance(x, dict) else x) for x in yaml.safe_load(Path(a.script).read_text())]
    asyncio.run(main(a, script + [c.replace(" | ", " ") for c in turn_speech.CASES]))
