"""What a user feels in the browser: last word of a spoken question -> first avatar audio heard in the
page, and join click -> first avatar frame shown, measured by the LiveKit page itself.

    python bench/browser.py [--questions 10]

One run of tests/fixtures/livekit_browser_worker.py inside a private network namespace: the SFU-lite
test server, the agent session (energy VAD, faster-whisper tiny.en, a scripted one-sentence answer,
espeak, the procedural portrait at 480x270 25 fps) and headless Chromium on
examples/livekit_participant/web, whose microphone plays N piper questions 7 s apart. The page's
WebAudio levels give the end of each question (its own microphone) and the first avatar audio after
it; requestVideoFrameCallback gives the first frame. Media goes agent -> relay -> Chromium with one
decode/re-encode in the relay (aiortc): a real SFU forwards packets, so real rooms add network
time but not that. Needs `unshare -rn`, chromium + chromium-driver, selenium and `make web`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOUD = 0.01


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10, choices=range(1, 21), metavar="1..20")
    args = ap.parse_args()
    from tests.fixtures import browser_analysis as A
    from tests.fixtures.livekit_netns import netns_available, run_scenario

    if (reason := netns_available()) is not None:
        print(f"skipped: {reason}")
        return
    if not (ROOT / "examples/livekit_participant/web/vendor/livekit-client.umd.js").exists():
        print("skipped: the page is not built (`make web`)")
        return
    res = run_scenario(f"bench:{args.questions}", timeout=60 + 15 * args.questions,
                       worker="livekit_browser_worker.py")
    if "fatal" in res or "error" in res or "page" not in res:
        print("failed:", res.get("fatal") or res.get("error"), res["stderr_tail"][-1500:])
        sys.exit(1)
    record, tl = res["page"]["record"], res["page"]["timeline"]
    questions = A.loud_spans(tl["mic"], LOUD, min_gap_ms=600)
    latencies = []
    for i, (_, end) in enumerate(questions):
        nxt = questions[i + 1][0] if i + 1 < len(questions) else float("inf")
        heard = A.first_loud_after(tl["audio"], end, LOUD)
        if heard is not None and heard < nxt:
            latencies.append(heard - end)
    print(f"questions spoken {len(questions)} (of {args.questions}), answered audibly {len(latencies)}")
    if latencies:
        ms = sorted(round(x) for x in latencies)
        print(f"last word -> first avatar audio heard in the page: p50 {statistics.median(ms):.0f} ms, "
              f"min {ms[0]} ms, max {ms[-1]} ms  {ms}")
    if tl["firstFrameAt"] is not None and record["joinClickedAt"] is not None:
        print(f"join click -> first avatar frame shown: {tl['firstFrameAt'] - record['joinClickedAt']:.0f} ms "
              f"(connected after {record['joinedAt'] - record['joinClickedAt']:.0f} ms)")
    spans = A.loud_spans(tl["audio"], LOUD, min_gap_ms=900)
    if spans:
        shown = sum(A.fps(tl["frames"], a, b) * (b - a) for a, b in spans) / sum(b - a for a, b in spans)
        print(f"frames shown while the avatar speaks: {shown:.1f} fps; network {tl['net']}")
    print(f"agent: {res.get('agent_metrics')}")


if __name__ == "__main__":
    main()
