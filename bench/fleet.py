"""Dispatch worker on this machine: room dispatched -> first avatar frame, and rooms per worker.

    python bench/fleet.py            (FLEET_ROOMS=10 sequential rooms, FLEET_MAX=4 concurrent rooms)

One `flowact-agent worker` process against the LiveKit-protocol test server with the agent-worker
service (tests/fixtures/livekit_fleet.py `bench`), inside a private network namespace. Persona: idle
face + espeak, 320x180 at 25 fps. Prints: dispatch -> first frame decoded by the server (p50/p95 over
sequential rooms, each on a warm process), then for 1..FLEET_MAX concurrent rooms the frames each
job wrote per second (from the worker's /metrics), late frames dropped/repeated, the worker's load and
the memory of its processes. The test server decodes every stream in one Python process (aiortc),
so its own CPU competes with the worker's on this 2-core machine: numbers are pessimistic.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "fixtures"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = ["unshare", "-rn", "sh", str(HERE / "netns_run.sh"), "127.0.0.2", sys.executable,
               str(HERE / "livekit_fleet.py"), "bench", str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if not out.exists():
            print(f"bench failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
            return 1
        res = json.loads(out.read_text())
    if "fatal" in res:
        print("bench failed:", res["fatal"], res.get("worker_log_tail", ""))
        return 1
    lat = sorted(x for x in res["latency_s"] if x is not None)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else float("nan")
    print(f"dispatch -> first frame at the server over {len(res['latency_s'])} rooms: "
          f"p50 {statistics.median(lat):.3f} s, p95 {p95:.3f} s, all {res['latency_s']}")
    print("rooms  fps/room  dropped  repeated  load   RSS of the worker's processes (MB)")
    for s in res["concurrency"]:
        print(f"{s['rooms']:>5}  {s['fps_per_room']:>8}  {s['dropped']:>7.0f}  {s['repeated']:>8.0f}  "
              f"{s['load']:<5}  {s['rss_mb_processes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
