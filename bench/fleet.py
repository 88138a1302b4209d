"""Dispatch worker on this machine: dispatch latency (with its breakdown) and sessions per worker.

    .venv/bin/python bench/fleet.py                       # everything (~15-25 min on a quiet 2-core box)
    .venv/bin/python bench/fleet.py latency idle          # only some parts
    FLEET_ROOMS=20 FLEET_MAX=8 FLEET_HOLD_S=15 FLEET_CHAT_S=1 .venv/bin/python bench/fleet.py

Parts (each one run of tests/fixtures/livekit_fleet_bench.py in a private network namespace, one real
`flowact-agent worker` against the LiveKit-protocol test server with the agent-worker service, 320x180
at 25 fps):

- `latency`: FLEET_ROOMS rooms dispatched one after another to a warm worker, the test server joining
  the job as livekit-server does (`real_join`); p50/p95 of each mark from
  the room's creation: assignment sent, job started in its process, its `connect()` called, the join
  as the server saw it (signal websocket opened, join response sent, the client's publisher offer,
  its answer to the subscriber offer), room connected (the SDK's `connect()` returned), persona
  config read, first track added, the publisher offer with it and the server's answer, first frame
  rendered, first frame handed to the SDK, the video track at the server, first frame decoded by
  the server, session started.
- `idle`, `remote`, `local`: rooms added one by one (up to FLEET_MAX, stopping at the first that
  stutters): frames written per room per second, late frames, frames decoded per room per second, CPU
  seconds of the job processes per session-second, RSS/USS per job process (with its children), and
  for `remote` the CPU of the loopback OpenAI-compatible server standing for the remote LLM. `remote`
  and `local` speak: a user types a question, waits for the spoken answer, pauses FLEET_CHAT_S seconds
  and asks again (`turns`: answers finished in the window).

"Sessions sustained" is the largest room count up to which every count had no late frame, >= 24.5
fps written per room and >= 24 fps decoded per room (the ramp stops after two room counts in a row
that miss it). The test server decodes every stream in one Python process (aiortc), so its CPU
competes with the worker's on this machine: the numbers are pessimistic, and on a busy machine a
single late frame is noise (the clean room counts are printed too).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "fixtures"
PARTS = ("latency", "idle", "remote", "local")
MARKS = ("assigned", "start", "connect", "signal_opened", "join_sent", "publisher_offer", "subscriber_answer",
         "connected", "configured", "add_track", "track_offer", "track_answer", "first_rendered", "first_published",
         "track_received", "decoded", "session_started")


def run_part(name: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = ["unshare", "-rn", "sh", str(HERE / "netns_run.sh"), "127.0.0.2", sys.executable,
               str(HERE / "livekit_fleet_bench.py"), name, str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if not out.exists():
            print(f"{name}: failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
            return None
        res: dict[str, Any] = json.loads(out.read_text())
    if "fatal" in res:
        print(f"{name}: failed: {res['fatal']}\n{res.get('worker_log_tail', '')}")
        return None
    return res


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else float("nan")


def print_latency(res: dict[str, Any]) -> None:
    rooms = res["rooms"]
    print(f"\ndispatch latency over {len(rooms)} rooms (seconds from the room's dispatch; warm worker)")
    print(f"{'mark':<18} {'p50':>6} {'p95':>6} {'max':>6}")
    for mark in MARKS:
        xs = [r[mark] for r in rooms if r.get(mark) is not None]
        if xs:
            print(f"{mark:<18} {statistics.median(xs):6.3f} {pct(xs, 0.95):6.3f} {max(xs):6.3f}")
    print("decoded per room:", [r.get("decoded") for r in rooms])


def print_capacity(name: str, res: dict[str, Any]) -> None:
    steps = res.get("steps", [])
    clean = [s["rooms"] for s in steps if "error" not in s and not s["dropped"] and not s["repeated"]
             and s["written_fps_per_room"] >= 24.5 and s["decoded_fps_min"] >= 24.0]
    sustained = next((k for k in range(1, len(steps) + 2) if k not in clean), 1) - 1
    print(f"\n{name}: sessions sustained at 25 fps with no late frame (every count up to it clean): {sustained}; "
          f"clean room counts: {clean} of {len(steps)} tried")
    print("rooms  written fps/room  decoded fps min  late (drop/rep)  turns  CPU s per session-s  "
          "LLM server CPU s/s  MB per job (RSS/USS)")
    for s in steps:
        if "error" in s:
            print(f"{s['rooms']:>5}  {s['error']}")
            continue
        llm = "" if s["llm_server_cpu_s_per_s"] is None else s["llm_server_cpu_s_per_s"]
        print(f"{s['rooms']:>5}  {s['written_fps_per_room']:>16}  {s['decoded_fps_min']:>15}  "
              f"{s['dropped']:>6.0f}/{s['repeated']:<8.0f}  {s['turns']:>5.0f}  {s['cpu_s_per_session_s']:>19}  "
              f"{llm!s:>18}  {s['mem_mb_rss_uss']}")


def main(argv: list[str]) -> int:
    parts = argv or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
        return 2
    failed = 0
    for part in parts:
        res = run_part(part)
        if res is None:
            failed += 1
        elif part == "latency":
            print_latency(res)
        else:
            print_capacity(part, res)
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
