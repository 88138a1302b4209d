"""End-of-turn model (Smart Turn v3.2 on onnxruntime, 1 thread) on real piper speech: accuracy and latency.

Run: `.venv/bin/python bench/turn_detect.py [--endpointer]`. The test set is tests/fixtures/turn_speech.py:
14 sentences, each whole (complete) and cut mid-sentence (incomplete) two ways: at a comma pause
("pause", continuation prose) and at a plain word gap ("gap", no pause in the voice). Each audio ends
in the 200 ms pause after which the endpointer asks the model. Piper's output differs from one
process to the next (not within one), so run it a few times to see the spread. Latency is per call
(features + inference), on a shared 2-core box: pessimistic when other work runs.
`--endpointer` also feeds each complete turn in real time through the WebRTC VAD with
`end_of_turn: smart_turn` (pause 200 ms) and prints how long after the last voiced frame the turn
ended (the plain silence endpointer: end_silence_ms = 600 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from agent.frames import AudioChunk  # noqa: E402
from plugins.turn_smart.model import SmartTurnModel  # noqa: E402
from tests.fixtures import turn_speech  # noqa: E402


async def endpoint_delays() -> list[tuple[float, str]]:
    """(end - last voiced frame, reason) per complete case, fed like a microphone (20 ms chunks)."""
    from plugins.vad_webrtc import WebrtcVAD, WebrtcVADConfig

    rate = turn_speech.RATE
    out = []
    for case in turn_speech.CASES:
        vad = WebrtcVAD(WebrtcVADConfig(end_of_turn="smart_turn"), sample_rate=rate)
        await vad.start()
        pcm = np.concatenate([np.zeros(rate // 2, np.int16), turn_speech.cut_speech(case, True),
                              np.zeros(3 * rate, np.int16)])
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            for i in range(0, len(pcm), 320):
                await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
                ends = [e for e in await vad.feed(AudioChunk(pcm[i : i + 320], rate)) if not e.speaking]
                if ends:
                    assert ends[0].last_voiced_t is not None
                    out.append((ends[0].t - ends[0].last_voiced_t, vad.endpointer.last_end_reason))
                    break
        finally:
            await vad.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3, help="model calls per utterance (latency samples)")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--endpointer", action="store_true", help="also time the VAD's end of complete turns")
    args = ap.parse_args()
    model = SmartTurnModel()
    model.warmup()
    lat_ms: list[float] = []
    right: dict[str, list[bool]] = {"complete": [], "incomplete/pause": [], "incomplete/gap": []}
    for case in turn_speech.CASES:
        for label, complete, cut in (("complete", True, "pause"), ("incomplete/pause", False, "pause"),
                                     ("incomplete/gap", False, "gap")):
            audio = turn_speech.turn_case(case, complete, cut=cut)
            for _ in range(args.calls):
                t0 = time.perf_counter()
                p = model(audio, turn_speech.RATE)
                lat_ms.append((time.perf_counter() - t0) * 1000)
            right[label].append((p >= args.threshold) == complete)
            print(f"{label:17s} p={p:.2f} {lat_ms[-1]:6.1f} ms  {case.replace(' | ', ' ' if complete else ' |')}")
    print()
    for label, ok in right.items():
        print(f"accuracy {label:17s} {sum(ok)}/{len(ok)} = {sum(ok) / len(ok):.0%}")
    if args.endpointer:
        delays = asyncio.run(endpoint_delays())
        d = np.array([x for x, _ in delays]) * 1000
        reasons = [r for _, r in delays]
        print(f"endpointer (webrtc + smart_turn, pause 200 ms): complete turns end {np.percentile(d, 50):.0f} ms "
              f"(p50) / {np.percentile(d, 95):.0f} ms (p95) after the last voiced frame; ended by the model "
              f"{reasons.count('complete')}/{len(reasons)}, the others by silence ({', '.join(sorted(set(reasons)))})")
    main_set = right["complete"] + right["incomplete/pause"]
    lat = np.array(lat_ms)
    print(f"turn_detect accuracy={sum(main_set) / len(main_set):.2f} (complete + pause cuts, n={len(main_set)}) "
          f"latency_ms p50={np.percentile(lat, 50):.1f} p95={np.percentile(lat, 95):.1f} "
          f"max={lat.max():.1f} mean={statistics.fmean(lat_ms):.1f} n={len(lat_ms)}")


if __name__ == "__main__":
    main()
