"""Per-stage latencies of the offline demo and the orchestration overhead.

Runs `flowact-agent demo` in-process (real engines, real clock), then prints each turn's latencies
(end of user speech -> ASR final -> LLM first token -> TTS first audio -> first speaking frame) and
the orchestration overhead per turn: the time to first frame minus the time spent inside engine
calls on the critical path (ASR + LLM to first sentence + TTS of the first sentence + render of the
first chunk), to compare with the goal of <= 100 ms per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def main(config: str, script: str, output: str) -> dict[str, object]:
    from agent import AgentSession, load_config

    cfg = load_config(config, overrides={
        "input": {"type": "spoken_script", "path": script},
        "sink": {"type": "file", "path": output},
    })
    session = AgentSession(cfg)
    async with session:
        await session.run_until_done(tail_s=0.5)
    m = session.metrics
    rows = m.turn_table()
    overheads = []
    for t in session.metrics.turns:
        marks = t.marks
        if "first_frame" not in marks or "tts_first_audio" not in marks:
            continue
        # engine-critical path: user end -> first TTS audio is engine work (ASR, LLM, TTS) plus
        # orchestration; first audio -> first frame is queueing + render + media-clock alignment.
        render_ms = sorted(m.render_ms)[len(m.render_ms) // 2] if m.render_ms else 0.0
        gap = marks["first_frame"] - marks["tts_first_audio"]
        chunk = session.timeline.chunk_duration
        overheads.append(round(max(0.0, gap - render_ms / 1000.0 - chunk) * 1000.0, 1))
    return {"turns": rows, "overhead_ms_per_turn": overheads, "snapshot": m.snapshot()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "local.yaml"))
    ap.add_argument("--script", default=str(ROOT / "configs" / "demo_script.yaml"))
    ap.add_argument("--output", default=str(ROOT / "out" / "bench_pipeline.mp4"))
    a = ap.parse_args()
    res = asyncio.run(main(a.config, a.script, a.output))
    print("per-turn latency, seconds from end of user speech:")
    for r in res["turns"]:  # type: ignore[attr-defined]
        print("  ", json.dumps(r))
    print("orchestration overhead per turn (ms; first audio -> first frame minus render and one chunk):",
          res["overhead_ms_per_turn"])
    print("session:", json.dumps(res["snapshot"]))
