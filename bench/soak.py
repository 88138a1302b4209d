"""Soak: one session on the real offline engines and media path for a long time, under faults.

    python bench/soak.py --minutes 60                      # file sink (fragmented MP4) + MQTT
    python bench/soak.py --minutes 10 --transport livekit  # the LiveKit sink, in a network namespace

A synthetic user talks to the agent through a microphone (questions spoken by an espeak voice, so
VAD -> ASR -> LLM -> TTS -> portrait -> sink all run in real time), types chat lines (over the
room's chat in LiveKit mode), sends MQTT commands through a real mosquitto the bench starts, and
barges in at random points of the answers (also right at the first speaking chunk, and twice in a
row). Faults are injected on a schedule: each kind once in the opening, then the next kind (round
robin) every `--fault-every-min` minutes:

- `tts_raise` / `asr_raise`: the engine's next call raises (the engine's retry policy may absorb it);
- `sink_stall`: the sink's next write blocks for 2 s;
- `llm_kill_restart`: the llama.cpp server is killed (SIGKILL, its process group) while the answer
  is being generated; the LLM plugin must start it again on its port by itself;
- `mqtt_broker_restart`: mosquitto is stopped and started; the agent's MQTT client must reconnect
  (its retained `online` comes back) and keep taking commands (a `say` sent after it is spoken);
- `livekit_signal_drop` (LiveKit mode only): the server closes the agent's signalling websocket
  without a leave; the sink must rejoin, media must reach the server again and room chat be answered.

A fault counts as survived when its own check passes (reconnects above) and the next question after
it is answered in full. Every second the bench samples RSS, Python heap blocks, A/V offset, fps,
threads, tasks and descriptors; at the end it writes `<out>.json` and `<out>.png` and prints:

    soak minutes=.. turns=a/b barge_ins=a/b faults=a/b lost_samples=.. max_av_offset_ms=..
    rss_growth_mb_per_h=.. leaked_tasks=.. leaked_threads=.. leaked_fds=..

Definitions: turns = questions answered without interruption / questions asked that the bench did
not interrupt on purpose (spoken, typed, MQTT `say`); a barge-in is honoured when the agent's
`interrupt` follows the user's voice onset within 2 s and no chunk with audible speech is handed to
the sink more than 300 ms after that interrupt (judged once that window is over, while the user goes
on) (LiveKit mode: to the SDK, after the sink's queue
that a barge-in clears; when the sink finished writing it is reported too, `stop_written_s`: a sink
behind on a starved CPU finishes late what it was given before the cut; the onset -> interrupt time
is reported apart; a user voice that began after the answer had played out is no barge-in:
`too_late`, unless the agent interrupted it; each attempt's record is in `barge_ins.log`);
lost_samples = synthesized samples of uninterrupted answers not found verbatim in the audio written
to the sink (`soak_parts.AudioLedger`; LiveKit mode: the audio handed to the SDK, after the sink's
own queue); max_av_offset_ms = the largest of the session's A/V offset sampled each second and, in
file mode, the offset between the recording's audio and video track ends (demuxed after the run);
rss_growth_mb_per_h = slope of RSS after the warm-up (the later of the first quarter, at most
5 min, and the end of the opening, at most half the run; the same slope for the allocator's
in-use and free memory and the RSS steps are in the JSON, see bench/soak_report.py); leaked_* =
growth from the warm baseline (idle after the first answer, again after the opening when the run
goes on) to the end (idle, before closing); `after_close` in the JSON is what remained after closing.
The LiveKit mode runs the LiveKit-protocol test server in-process (tests/fixtures/livekit_server.py)
inside `unshare -rn` (libwebrtc needs a non-loopback interface); the user's voice still enters
through the local synthetic microphone there (the fixture user publishes a tone), chat goes through
the room. The agent answers in one short sentence (`PERSONA`; `--no-persona` keeps the config's
prompt): >= 200 turns an hour need <= 18 s a turn. The session runs its config's defaults otherwise
(early answers on: the ledger books a held answer's audio to the turn that adopts it; `early_answers`
in the JSON). `--tracemalloc` lists the Python heap's top growth since the baseline;
`--trim-at-turn-end` (an experiment) has the bench trim the native heap after every answered turn
instead of the session's periodic trim, and reports each trim's cost (`bench_trims`). Numbers on the
shared 2-core machine are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import parse_config, read_yaml  # noqa: E402
from agent.memory import malloc_stats, trim  # noqa: E402
from bench.soak_barge import BargeIns  # noqa: E402
from bench.soak_faults import QUESTIONS, FaultInjection  # noqa: E402
from bench.soak_memory import HeapTrace, Samples, arena_count, rollup  # noqa: E402
from bench.soak_parts import (  # noqa: E402
    AudioLedger,
    Faults,
    MqttUser,
    SyntheticMic,
    Watch,
    build_faulty,
    fd_kinds,
    process_sample,
    task_names,
    thread_names,
)
from bench.soak_report import build_report, mp4_timing, plot, summary_line  # noqa: E402
from bench.soak_room import in_netns  # noqa: E402
from flowact.clock import RealClock  # noqa: E402

FAULTS = ["tts_raise", "llm_kill_restart", "mqtt_broker_restart", "asr_raise", "sink_stall", "livekit_signal_drop"]
AGENT_ID = "soak"
PIPELINE = 8  # chunks between building a chunk and the sink writing it, with a margin (lead + queues)
TAIL_WAIT_S = 10.0  # how long after its end a turn's audio may still be on its way (a sink's queue, a rejoin)
# >= 200 turns an hour leaves <= 18 s a turn for the question (~2 s), the end of turn, the answer and
# the user's pause: the soak's agent answers in one short sentence (4-6 s of speech), as a support
# agent on a call does; `--no-persona` keeps the config's own prompt and answer length.
PERSONA = (
    "You are Ava, a friendly customer-support agent for an online shop, speaking through a video avatar. "
    "Reply with exactly one short spoken sentence of at most fifteen words, and no lists. "
    "Facts: order 1234 shipped on Monday and arrives tomorrow; a delivery address can be changed until the "
    "parcel leaves the depot, in the account page under Orders; shipping takes two to four days; returns are "
    "free within thirty days; the support line is open from nine to six, Monday to Friday."
)
PERSONA_TOKENS = 32


def timed_trim() -> tuple[float, float]:
    """`agent.memory.trim()` (blocking: run it in a thread): (its thread CPU time, its wall time) in s."""
    cpu, wall = time.thread_time(), time.perf_counter()
    trim()
    return time.thread_time() - cpu, time.perf_counter() - wall


class Soak(FaultInjection, BargeIns):
    """The run: the session, the user, the fault schedule and the counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.faults = Faults()
        self.fault_kinds = [f for f in FAULTS if args.transport == "livekit" or f != "livekit_signal_drop"]
        self.injected = {k: 0 for k in self.fault_kinds}
        self.survived = {k: 0 for k in self.fault_kinds}
        self.fault_log: list[dict[str, Any]] = []
        self.barge: dict[str, Any] = {"attempted": 0, "honoured": 0, "too_late": 0, "onset_to_interrupt_s": [],
                                      "stop_after_interrupt_s": [], "log": []}
        self.asked = 0
        self.answered = 0
        self.fault_questions = {"asked": 0, "answered": 0}  # questions a fault was aimed at
        self.samples = Samples()
        self.watch = Watch()
        self.room: Any = None  # LiveKit mode: bench.soak_room.RoomUser
        # (not before, chunks written by then, the turn, the last time to wait for its audio's tail)
        self._checks: list[tuple[float, int, dict[str, Any], float]] = []
        self.heap = HeapTrace(args.tracemalloc)
        self.heap_top: list[dict[str, Any]] = []
        self.fd_diff: dict[str, list[str]] = {}
        self.trims: list[tuple[float, float, float]] = []  # --trim-at-turn-end: (cpu s, wall s, MB released)
        self.post_trim: list[dict[str, float]] = []  # and RSS right after each trim
        self.opened = False  # the opening is over and the leak baseline was taken again after it

    # --- setup -------------------------------------------------------------------------------
    def build(self, broker: Any, server: Any) -> Any:
        from agent.session import AgentSession, Components
        from plugins.control_mqtt import MqttControl
        from plugins.tts_espeak import EspeakTTS
        from plugins.vad_silero import SileroVAD

        args = self.args
        raw = read_yaml(args.config)
        raw.pop("input", None)
        raw.pop("control", None)
        if args.persona:  # the soak's caller: one short spoken sentence per answer (a support chat's cadence)
            raw.setdefault("session", {})["system_prompt"] = PERSONA
            raw.setdefault("llm", {})["max_tokens"] = PERSONA_TOKENS
        if args.trim_at_turn_end:  # the bench trims instead (`trimmer`)
            raw.setdefault("session", {})["malloc_trim_s"] = 0
        if server is None:
            raw["sink"] = {"type": "file", "path": args.output}
        else:
            from tests.fixtures.livekit_server import API_KEY, API_SECRET

            raw["sink"] = {"type": "livekit", "url": server.url, "room": "soak", "identity": "ava",
                           "api_key": API_KEY, "api_secret": API_SECRET, "reconnect_initial_s": 0.3,
                           "connect_timeout_s": 8,
                           # the user's voice comes from the synthetic mic; the fixture user's tone is
                           # not listened to (its dropped input would count in the sink's audio_dropped)
                           "listen_to": "nobody"}
        cfg = parse_config(raw, source=args.config)
        self.cfg = cfg
        vad = cfg.plugins["vad"].config
        self.min_speech_s = vad.min_speech_ms / 1000 if isinstance(vad, SileroVAD.Config) else 0.15
        s = cfg.session
        clock = RealClock()
        self.ledger = AudioLedger(s.sample_rate, lambda: self.session.turn_count)
        tts = build_faulty(cfg.plugins["tts"], "tts", self.faults, self.ledger, sample_rate=s.sample_rate, clock=clock)
        asr = build_faulty(cfg.plugins["asr"], "asr", self.faults, clock=clock)
        sink = build_faulty(cfg.plugins["sink"], "sink", self.faults, self.ledger, clock=clock,
                            handoff=server is not None, heard=self.watch.handed)
        self.voice = EspeakTTS(EspeakTTS.Config(), sample_rate=16000)
        self.mic = SyntheticMic(self.voice)
        control = MqttControl(MqttControl.Config(host=broker.host, port=broker.port, agent=AGENT_ID,
                                                 reconnect_max_s=2.0), clock=clock)
        self.control = control
        self.broker = broker
        self.mqtt = MqttUser(broker.host, broker.port, f"flowact/{AGENT_ID}")
        self.sink = sink
        self.session = AgentSession(cfg, clock=clock, components=Components(
            tts=tts, asr=asr, sink=sink, audio_input=self.mic, control=control))
        self.session.add_observer(self.watch)
        # a turn ends when its last chunk is built: it is checked once the sink has written PIPELINE
        # more chunks (the pipeline's depth; on a starved CPU the writer is seconds behind) and 2 s
        self.watch.on_turn = lambda rec: self._checks.append(
            (time.monotonic() + 2.0, self.watch.chunks + PIPELINE, rec, time.monotonic() + TAIL_WAIT_S))
        return self.session

    # --- background work ---------------------------------------------------------------------------
    async def sampler(self, t0: float) -> None:
        m = self.session.metrics
        while True:
            now = time.monotonic()
            ready = [c for c in self._checks if c[0] <= now and c[1] <= self.watch.chunks]
            self._checks = [c for c in self._checks if c not in ready]
            for _, _, rec, until in ready:  # the last chunk of a turn is written shortly after its `turn` event
                lost = self.ledger.turn_done(int(rec["turn"]), rec["interrupted"], final=now >= until)
                if lost is None:  # the writer is behind: its tail is still on its way
                    self._checks.append((now + 0.5, self.watch.chunks, rec, until))
                else:
                    rec["lost"] = lost
            snap = {"t": round(now - t0, 2), **process_sample(), **rollup(), **malloc_stats(),
                    "av_offset_ms": float(m.av_offset_ms),
                    "fps": round(float(m.fps_measured), 2), "frames": float(m.frames_written),
                    "dropped": float(m.frames_dropped), "repeated": float(m.frames_repeated)}
            if self.room is not None:
                snap.update(self.room.sample())
                snap.update({"sink_chunks_dropped": float(self.sink.chunks_dropped),
                             "sink_audio_dropped": float(self.sink.audio_dropped)})
            if len(self.samples) % 30 == 0:
                snap["arenas"] = float(arena_count())
                traced = self.heap.traced_mb()
                if traced is not None:
                    snap["traced_mb"] = traced
            self.samples.append(snap)
            await asyncio.sleep(1.0)

    async def trimmer(self) -> None:
        """`--trim-at-turn-end`: malloc_trim(0) in a thread once the agent idles after each answered
        turn; each trim's thread CPU time, wall time and the RSS it released go to `trims`."""
        seen = 0
        while True:
            await self.watch.until(lambda n=seen: len(self.watch.turns) > n, 3600)
            seen = len(self.watch.turns)
            await self.idle()
            before = process_sample()["rss_mb"]
            cpu_s, wall_s = await asyncio.to_thread(timed_trim)
            after = process_sample()["rss_mb"]
            self.trims.append((cpu_s, wall_s, before - after))
            self.post_trim.append({"t": round(time.monotonic() - self.t0, 2), "rss_mb": after})

    # --- user actions --------------------------------------------------------------------------
    async def ask(self, text: str, how: str = "spoken", within_s: float = 300.0, *, sabotaged: bool = False) -> bool:
        """Ask one question and wait for its turn to end (answered, interrupted or failed) and the
        agent to idle again; True when answered in full. `sabotaged`: a fault is aimed at it (counted
        apart from the turns)."""
        tally = self.fault_questions if sabotaged else None
        if tally is None:
            self.asked += 1
        else:
            tally["asked"] += 1
        before, ended = len(self.watch.turns), self.watch.ended()
        if how == "typed":
            if self.room is not None:
                await self.room.chat(text)
            else:
                await self.session.user_text(text)
        elif how == "mqtt":
            await self.mqtt.command("gesture", {"name": self.rng.choice(["nod", "smile", "blink"])})
            await self.mqtt.command("say", {"text": text, "interrupt": False})
        else:
            await self.mic.speak(text)
        await self.watch.until(lambda: self.watch.ended() > ended, within_s)
        ok = len(self.watch.turns) > before and not self.watch.turns[-1]["interrupted"]
        await self.idle()
        if tally is None:
            self.answered += ok
        else:
            tally["answered"] += ok
        self.progress(f"ask {how}: {'answered' if ok else 'NOT answered'}")
        return ok

    def progress(self, what: str) -> None:
        print(f"[{(time.monotonic() - self.t0) / 60:6.2f} min] {what}; turns {self.answered}/{self.asked} "
              f"barge-ins {self.barge['honoured']}/{self.barge['attempted']} "
              f"faults {sum(self.survived.values())}/{sum(self.injected.values())}", file=sys.stderr, flush=True)

    async def idle(self, within_s: float = 120.0) -> None:
        with contextlib.suppress(TimeoutError):
            await self.session.wait_idle(timeout=within_s)

    # --- the run -------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        from tests.fixtures.mosquitto import Mosquitto

        args = self.args
        workdir = Path(args.output).with_suffix(".broker")
        workdir.mkdir(parents=True, exist_ok=True)
        broker = Mosquitto(workdir)
        broker.start()
        server = None
        if args.transport == "livekit":
            from bench.soak_room import RoomUser
            from tests.fixtures.livekit_server import LiveKitTestServer

            server = LiveKitTestServer(media_ip="127.0.0.1")
            await server.start()
        self.heap.start()
        before_start = process_sample()
        session = self.build(broker, server)
        self.t0 = t0 = time.monotonic()
        end = t0 + args.minutes * 60
        opening = [a for a in args.opening.split(",") if a]
        warm: dict[str, float] | None = None
        warm_threads: list[str] = []
        warm_tasks: Counter[str] = Counter()
        warm_fds: Counter[str] = Counter()
        self.new_tasks: list[str] = []
        next_fault = 0.0  # after the opening, the first scheduled fault comes at once
        at_end: dict[str, float] = {}
        try:
            async with session:
                if server is not None:
                    self.room = RoomUser(server, "ava")
                    await self.room.join()
                sampler = asyncio.create_task(self.sampler(t0), name="soak-sampler")
                trimmer = asyncio.create_task(self.trimmer(), name="soak-trimmer") if args.trim_at_turn_end else None
                try:
                    step = 0
                    while opening or time.monotonic() < end:  # the opening always runs in full
                        step += 1
                        scheduled = not opening  # the opening's own steps are never replaced
                        action = opening.pop(0) if opening else self.rng.choices(
                            ["spoken", "typed", "barge", "barge_twice", "command"], [5, 2, 3, 1, 1])[0]
                        if scheduled and time.monotonic() >= next_fault:  # the schedule: one every N min
                            action, next_fault = "fault", time.monotonic() + args.fault_every_min * 60
                        if action == "fault":
                            action = "fault:" + self.fault_kinds[sum(self.injected.values()) % len(self.fault_kinds)]
                        if action.startswith("fault:"):
                            await self.inject(action.split(":", 1)[1])
                        elif action in ("barge", "barge_twice"):
                            await self.barged_question(twice=action == "barge_twice")
                        else:
                            how = {"command": "mqtt"}.get(action, action)
                            text = "Thanks for waiting, I am checking that." if how == "mqtt" else None
                            await self.ask(text or self.rng.choice(QUESTIONS), how)
                        rebase = not opening and not self.opened and time.monotonic() < end - 120
                        if (warm is None and self.answered) or rebase:
                            # the leak baseline: engines loaded and a turn done, then again once every
                            # path (each fault, barge-ins, chat, commands) has run once (lazy pools)
                            self.opened = self.opened or rebase
                            gc.collect()
                            warm, warm_threads = process_sample(), thread_names()
                            warm_tasks, warm_fds = task_names(), fd_kinds()
                            self.heap.mark()
                            warm["t"] = round(time.monotonic() - t0, 1)
                        await asyncio.sleep(self.rng.uniform(0.3, 2.0))
                    await self.idle()
                    await asyncio.sleep(2.5)  # pending lost-sample checks
                    for _ in range(int(TAIL_WAIT_S / 0.25)):  # and any waiting for its audio's tail
                        if not self._checks:
                            break
                        await asyncio.sleep(0.25)
                    gc.collect()
                    at_end = process_sample()
                    for _ in range(6):  # a dropped connection's sockets close asynchronously: let them
                        if warm is None or at_end["fds"] <= warm["fds"]:
                            break
                        await asyncio.sleep(0.5)
                        at_end = process_sample()
                    end_threads = thread_names()
                    self.new_tasks = sorted((task_names() - warm_tasks).elements())
                    self.fd_diff = {"new": sorted((fd_kinds() - warm_fds).elements()),
                                    "gone": sorted((warm_fds - fd_kinds()).elements())}
                    self.heap_top = self.heap.top()
                finally:
                    background = [t for t in (sampler, trimmer) if t is not None]
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                for _, _, rec, _until in self._checks:
                    rec["lost"] = self.ledger.turn_done(int(rec["turn"]), rec["interrupted"])
                snapshot = session.metrics.snapshot()
                extra = self.room.summary() if self.room is not None else {}
                if self.room is not None:
                    extra.update({"sink_connects": self.sink.connects, "sdk_reconnects": self.sink.sdk_reconnects,
                                  "chunks_dropped": self.sink.chunks_dropped})
        finally:
            await self.voice.aclose()
            if server is not None:
                await server.aclose()
            broker.stop()
        gc.collect()
        after_close = process_sample()
        return build_report(self, before_start, warm or before_start, at_end, after_close, snapshot, extra,
                           {"warm": warm_threads, "end": end_threads})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--config", default=str(ROOT / "configs" / "local.yaml"))
    ap.add_argument("--output", default=str(ROOT / "out" / "soak.mp4"),
                    help="the recording (file sink); the report goes to .json/.png beside it")
    ap.add_argument("--transport", choices=["file", "livekit"], default="file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-every-min", type=float, default=4.0,
                    help="after the opening, inject the next fault kind (round robin) this often")
    ap.add_argument("--no-persona", dest="persona", action="store_false",
                    help="keep the config's system prompt and max_tokens (default: the soak's one-sentence persona)")
    ap.add_argument("--trim-at-turn-end", action="store_true",
                    help="experiment: the bench calls malloc_trim(0) after every answered turn (the session's own "
                    "periodic trim off) and reports each trim's CPU time and the RSS it released")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="trace the Python heap (slower): the report lists its top growth since the warm baseline")
    ap.add_argument("--opening", default=None,
                    help="actions to run first (then random ones): spoken, typed, barge, barge_twice, command, "
                    "fault:<kind>; default: every fault kind once, barge-ins, chat and a command")
    args = ap.parse_args(argv)
    if args.opening is None:
        kinds = [f for f in FAULTS if args.transport == "livekit" or f != "livekit_signal_drop"]
        others = ["barge", "barge_twice", "typed", "command", "spoken", "barge"]
        opening = [x for pair in zip(others, (f"fault:{k}" for k in kinds), strict=False) for x in pair]
        args.opening = ",".join(opening)
    return args


def main() -> None:
    args = parse_args()
    if args.transport == "livekit" and not os.environ.get("FLOWACT_SOAK_NETNS"):
        sys.exit(in_netns(__file__, sys.argv[1:]))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    soak = Soak(args)
    report = asyncio.run(soak.run())
    out = Path(args.output)
    if args.transport == "file" and out.exists():
        try:
            report["mp4"] = mp4_timing(out)
            report["max_av_offset_ms"] = max(report["max_av_offset_ms"], abs(report["mp4"]["end_offset_ms"]))
        except Exception as e:  # noqa: BLE001 - an undecodable recording is a finding, not a crash
            report["mp4"] = {"error": f"{type(e).__name__}: {e}"}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    plot(report, out.with_suffix(".png"))
    print(f"report: {out.with_suffix('.json')} {out.with_suffix('.png')}")
    print(summary_line(report))


if __name__ == "__main__":
    main()
