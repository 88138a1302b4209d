"""What a user feels in the browser: last word of a spoken question -> first avatar audio heard in the
page, join click -> first avatar frame shown, and the onset of a barge-in -> the avatar's audio gone
quiet in the page (target <= 300 ms), measured by the LiveKit page itself.

    python bench/browser.py [--questions 10] [--barge-ins 3]

The barge-ins are those of the browser test's conversation (a question, then the user talking over
the long answer), run `--barge-ins` times; each is split where its time went (the voice reaching the
relay and the agent, the agent's decision, its silence reaching the relay, then the page).

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
BARGE_IN_TARGET_MS = 300


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10, choices=range(1, 21), metavar="1..20")
    ap.add_argument("--barge-ins", type=int, default=3, choices=range(0, 11), metavar="0..10")
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
    if args.barge_ins:
        barge_ins(args.barge_ins)


def barge_ins(n: int) -> None:
    """Run the browser test's conversation `n` times; print each barge-in's parts and the onset ->
    quiet-in-page p50 and max against the target."""
    import os

    from tests.fixtures import browser_analysis as A
    from tests.fixtures.livekit_netns import run_scenario

    stops = []
    for i in range(n):
        res = run_scenario("conversation", timeout=300, worker="livekit_browser_worker.py")
        if "fatal" in res or "error" in res or "page" not in res:
            print(f"barge-in run {i + 1}: failed:", res.get("fatal") or res.get("error"))
            continue
        parts = A.barge_in_parts(res, LOUD)
        print(f"barge-in run {i + 1} (load {os.getloadavg()[0]:.1f}), ms after the onset:",
              {k: v for k, v in parts.items() if k != "onset"})
        if parts["quiet_in_page"] is not None:
            stops.append(parts["quiet_in_page"])
    if stops:
        worst = max(stops)
        print(f"barge-in onset -> avatar quiet in the page: p50 {statistics.median(stops):.0f} ms, max {worst:.0f} ms "
              f"over {len(stops)} (target <= {BARGE_IN_TARGET_MS} ms): "
              f"{'ok' if worst <= BARGE_IN_TARGET_MS else 'MISSES THE TARGET'}")


if __name__ == "__main__":
    main()
