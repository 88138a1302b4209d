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
`interrupt` follows the user's voice onset within 2 s and no chunk with audible speech reaches the
sink more than 300 ms after that interrupt (the onset -> interrupt time is reported apart);
lost_samples = synthesized samples of uninterrupted answers not found verbatim in the audio written
to the sink (`soak_parts.AudioLedger`; LiveKit mode: the audio handed to the SDK, after the sink's
own queue); max_av_offset_ms = the largest of the session's A/V offset sampled each second and, in
file mode, the offset between the recording's audio and video track ends (demuxed after the run);
rss_growth_mb_per_h = slope of RSS after the warm-up (first quarter, at most 5 min); leaked_* =
growth from the warm baseline (idle after the first answer, again after the opening when the run
goes on) to the end (idle, before closing); `after_close` in the JSON is what remained after closing.
The LiveKit mode runs the LiveKit-protocol test server in-process (tests/fixtures/livekit_server.py)
inside `unshare -rn` (libwebrtc needs a non-loopback interface); the user's voice still enters
through the local synthetic microphone there (the fixture user publishes a tone), chat goes through
the room. Numbers on the shared 2-core machine are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import parse_config, read_yaml  # noqa: E402
from bench.soak_parts import (  # noqa: E402
    AudioLedger,
    Faults,
    MqttUser,
    SyntheticMic,
    Watch,
    build_faulty,
    process_sample,
    thread_names,
)
from flowact.clock import RealClock  # noqa: E402
from flowact.types import AgentState  # noqa: E402

QUESTIONS = [
    "Where is my order one two three four?", "Can I change the delivery address?",
    "How long does shipping take?", "Can you tell me more about returns?", "What are your opening hours?",
]
BARGE = ["Wait, stop.", "Sorry, one more thing.", "Hold on."]
FAULTS = ["tts_raise", "llm_kill_restart", "mqtt_broker_restart", "asr_raise", "sink_stall", "livekit_signal_drop"]
AGENT_ID = "soak"


class Soak:
    """The run: the session, the user, the fault schedule and the counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.faults = Faults()
        self.fault_kinds = [f for f in FAULTS if args.transport == "livekit" or f != "livekit_signal_drop"]
        self.injected = {k: 0 for k in self.fault_kinds}
        self.survived = {k: 0 for k in self.fault_kinds}
        self.fault_log: list[dict[str, Any]] = []
        self.barge = {"attempted": 0, "honoured": 0, "onset_to_interrupt_s": [], "stop_after_interrupt_s": []}
        self.asked = 0
        self.answered = 0
        self.fault_questions = {"asked": 0, "answered": 0}  # questions a fault was aimed at
        self.samples: list[dict[str, float]] = []
        self.watch = Watch()
        self.room: Any = None  # LiveKit mode: bench.soak_room.RoomUser
        self._checks: list[tuple[float, dict[str, Any]]] = []

    # --- setup -------------------------------------------------------------------------------
    def build(self, broker: Any, server: Any) -> Any:
        from agent.session import AgentSession, Components
        from plugins.control_mqtt import MqttControl
        from plugins.tts_espeak import EspeakTTS

        args = self.args
        raw = read_yaml(args.config)
        raw.pop("input", None)
        raw.pop("control", None)
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
        s = cfg.session
        clock = RealClock()
        self.ledger = AudioLedger(s.sample_rate, lambda: self.session.turn_count)
        tts = build_faulty(cfg.plugins["tts"], "tts", self.faults, self.ledger, sample_rate=s.sample_rate, clock=clock)
        asr = build_faulty(cfg.plugins["asr"], "asr", self.faults, clock=clock)
        sink = build_faulty(cfg.plugins["sink"], "sink", self.faults, self.ledger, clock=clock,
                            handoff=server is not None)
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
        self.watch.on_turn = lambda rec: self._checks.append((time.monotonic() + 2.0, rec))
        return self.session

    # --- background work ---------------------------------------------------------------------------
    async def sampler(self, t0: float) -> None:
        m = self.session.metrics
        while True:
            now = time.monotonic()
            due = [rec for t, rec in self._checks if t <= now]
            self._checks = [(t, rec) for t, rec in self._checks if t > now]
            for rec in due:  # the last chunk of a turn is written shortly after its `turn` event
                rec["lost"] = self.ledger.turn_done(int(rec["turn"]), rec["interrupted"])
            snap = {"t": round(now - t0, 2), **process_sample(), "av_offset_ms": float(m.av_offset_ms),
                    "fps": round(float(m.fps_measured), 2), "frames": float(m.frames_written),
                    "dropped": float(m.frames_dropped), "repeated": float(m.frames_repeated)}
            if self.room is not None:
                snap.update(self.room.sample())
                snap.update({"sink_chunks_dropped": float(self.sink.chunks_dropped),
                             "sink_audio_dropped": float(self.sink.audio_dropped)})
            self.samples.append(snap)
            await asyncio.sleep(1.0)

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

    async def barge_in(self, delay_s: float) -> None:
        """Talk over the answer `delay_s` after it started speaking."""
        w = self.watch
        self.barge["attempted"] += 1
        await asyncio.sleep(delay_s)
        n_onsets, n_int = len(self.mic.onsets), len(w.interrupts)
        await self.mic.speak(self.rng.choice(BARGE))
        await w.until(lambda: len(self.mic.onsets) > n_onsets, 10)
        onset = self.mic.onsets[-1] if len(self.mic.onsets) > n_onsets else time.monotonic()
        await asyncio.sleep(2.5)
        cut = next((i for i in list(w.interrupts)[n_int:] if onset - 0.1 <= i <= onset + 2.0), None)
        if cut is None:
            return
        later = [a for a in w.audible if cut < a <= cut + 2.0]
        stop = max(later) - cut if later else 0.0
        self.barge["onset_to_interrupt_s"].append(round(cut - onset, 3))
        self.barge["stop_after_interrupt_s"].append(round(stop, 3))
        if stop <= 0.3:
            self.barge["honoured"] += 1

    async def barged_question(self, twice: bool) -> None:
        """A question whose answer the user talks over (once, or again over the next answer)."""
        w = self.watch
        ended = w.ended()
        await self.mic.speak(self.rng.choice(QUESTIONS))
        if not await w.until(lambda: w.state == AgentState.SPEAKING or w.ended() > ended, 240) \
                or w.state != AgentState.SPEAKING:
            self.asked += 1  # never spoke: an unanswered question
            await w.until(lambda: w.ended() > ended, 30)
            await self.idle()
            self.progress("barged question: no answer to barge into")
            return
        first = self.rng.random() < 0.3  # right at the first speaking chunk
        await self.barge_in(0.0 if first else self.rng.uniform(0.2, 3.0))
        if twice and await w.until(lambda: w.state == AgentState.SPEAKING, 120):
            await self.barge_in(self.rng.uniform(0.0, 1.0))
        # the last barge-in is itself a question: its answer must come
        self.asked += 1
        n, ended = len(w.turns), w.ended()
        await w.until(lambda: w.ended() > ended and w.state != AgentState.SPEAKING, 300)
        ok = len(w.turns) > n and not w.turns[-1]["interrupted"]
        await self.idle()
        self.answered += ok
        what = 'answered' if ok else 'NOT answered'
        self.progress(f"barged question{' twice' if twice else ''}: last barge-in {what}")

    # --- faults ------------------------------------------------------------------------------------
    async def inject(self, kind: str) -> None:
        """Inject one fault during a question; survived when its own check passes and the next
        question is answered in full."""
        self.injected[kind] += 1
        t = time.monotonic()
        check: dict[str, Any] = {}
        ok = True
        q = self.rng.choice(QUESTIONS)
        if kind in ("tts_raise", "asr_raise", "sink_stall"):
            if kind == "sink_stall":
                self.faults.sink_stall_s = 2.0
            else:
                setattr(self.faults, kind, True)
            await self.ask(q, sabotaged=True)  # answered or not: the fault is on its way
            check["fired"] = dict(self.faults.fired)
        elif kind == "llm_kill_restart":
            ok = await self._kill_llm(q, check)
        elif kind == "mqtt_broker_restart":
            connections = self.control.connections
            await asyncio.to_thread(self.broker.restart)
            check["reconnected"] = await self.mqtt.wait_online(30)
            check["connections"] = [connections, self.control.connections]
            check["reconnect_s"] = round(time.monotonic() - t, 2)
            ok = check["reconnected"] and await self.ask("Thank you for your patience.", "mqtt")
            check["command_after"] = ok
        elif kind == "livekit_signal_drop":
            check.update(await self.room.drop())
            ok = bool(check.get("media_again"))
        answered = await self.ask(self.rng.choice(QUESTIONS), "typed" if kind == "livekit_signal_drop" else "spoken")
        check["next_answered"] = answered
        if ok and answered:
            self.survived[kind] += 1
        self.fault_log.append({"kind": kind, "t": round(t - self.t0, 1), "survived": ok and answered, **check})
        self.progress(f"fault {kind}: {'survived' if ok and answered else 'NOT survived'} {check}")

    async def _kill_llm(self, question: str, check: dict[str, Any]) -> bool:
        from plugins.llm_openai import OpenAILLM

        llm = self.session.c.llm
        server = llm.server if isinstance(llm, OpenAILLM) else None
        if server is None or server.proc is None:
            check["skipped"] = "not a local llama.cpp server"
            return False
        self.fault_questions["asked"] += 1
        before, failed = len(self.watch.turns), len(self.watch.failed)
        await self.mic.speak(question)
        check["thinking"] = await self.watch.until(lambda: self.watch.state == AgentState.THINKING, 30)
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))  # mid-stream: the reply is being generated
        pid, restarts = server.proc.pid, llm.server_restarts
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the server and anything it started
        t = time.monotonic()
        # the LLM plugin notices the dead server on its next attempt and starts it again
        await self.watch.until(lambda: len(self.watch.turns) > before or len(self.watch.failed) > failed, 300)
        check["turn_ended_s"] = round(time.monotonic() - t, 2)
        check["restarted_by_agent"] = llm.server_restarts > restarts and server.proc is not None \
            and server.proc.pid != pid
        self.fault_questions["answered"] += len(self.watch.turns) > before and not self.watch.turns[-1]["interrupted"]
        await self.idle()
        return bool(check["restarted_by_agent"])

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
        before_start = process_sample()
        session = self.build(broker, server)
        self.t0 = t0 = time.monotonic()
        end = t0 + args.minutes * 60
        opening = [a for a in args.opening.split(",") if a]
        warm: dict[str, float] | None = None
        warm_threads: list[str] = []
        warm_tasks: Counter[str] = Counter()
        self.new_tasks: list[str] = []
        opened = False
        next_fault = 0.0  # after the opening, the first scheduled fault comes at once
        at_end: dict[str, float] = {}
        try:
            async with session:
                if server is not None:
                    self.room = RoomUser(server, "ava")
                    await self.room.join()
                sampler = asyncio.create_task(self.sampler(t0), name="soak-sampler")
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
                        rebase = not opening and not opened and time.monotonic() < end - 120
                        if (warm is None and self.answered) or rebase:
                            # the leak baseline: engines loaded and a turn done, then again once every
                            # path (each fault, barge-ins, chat, commands) has run once (lazy pools)
                            opened = opened or rebase
                            gc.collect()
                            warm, warm_threads = process_sample(), thread_names()
                            warm_tasks = task_names()
                            warm["t"] = round(time.monotonic() - t0, 1)
                        await asyncio.sleep(self.rng.uniform(0.3, 2.0))
                    await self.idle()
                    await asyncio.sleep(2.5)  # pending lost-sample checks
                    gc.collect()
                    at_end = process_sample()
                    for _ in range(6):  # a dropped connection's sockets close asynchronously: let them
                        if warm is None or at_end["fds"] <= warm["fds"]:
                            break
                        await asyncio.sleep(0.5)
                        at_end = process_sample()
                    end_threads = thread_names()
                    self.new_tasks = sorted((task_names() - warm_tasks).elements())
                finally:
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                for _, rec in self._checks:
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
        return self.report(before_start, warm or before_start, at_end, after_close, snapshot, extra,
                           {"warm": warm_threads, "end": end_threads})

    def report(self, before_start: dict[str, float], warm: dict[str, float], at_end: dict[str, float],
               after_close: dict[str, float], snapshot: dict[str, Any], extra: dict[str, Any],
               threads: dict[str, list[str]]) -> dict[str, Any]:
        elapsed = time.monotonic() - self.t0
        settle = min(300.0, 0.25 * elapsed)  # warm-up: engines, caches and allocator pools fill up
        late = [x for x in self.samples if x["t"] >= settle]

        def slope(key: str, since: float | None = None) -> float:
            xs = late if since is None else [x for x in self.samples if x["t"] >= since]
            if len(xs) < 10:
                return 0.0
            return float(np.polyfit([x["t"] / 3600 for x in xs], [x[key] for x in xs], 1)[0])

        w = self.watch
        lat = [r["first_audio"] for r in w.turns if r.get("first_audio") is not None and not r["interrupted"]]
        new_threads = sorted(set(threads["end"]) - set(threads["warm"]))
        return {
            "minutes": round(elapsed / 60, 2), "transport": self.args.transport, "seed": self.args.seed,
            "turns_answered": self.answered, "turns_attempted": self.asked, "turn_events": len(w.turns),
            "turns_failed": len(w.failed), "fault_questions": self.fault_questions,
            "barge_ins": self.barge, "faults": self.injected, "faults_survived": self.survived,
            "fault_log": self.fault_log, "lost_samples": self.ledger.lost,
            "lost_check": {"samples_compared": self.ledger.checked, "turns_checked": self.ledger.turns_checked,
                           "lossy_turns": self.ledger.lossy_turns},
            "max_av_offset_ms": max((abs(x["av_offset_ms"]) for x in self.samples), default=0.0),
            "frames": {"written": snapshot.get("frames"), "dropped": snapshot.get("dropped"),
                       "repeated": snapshot.get("repeated")},
            "latency_first_audio_s": {"n": len(lat), "p50": float(np.median(lat)) if lat else None,
                                      "p90": float(np.percentile(lat, 90)) if lat else None,
                                      "max": max(lat, default=None)},
            "rss_growth_mb_per_h": round(slope("rss_mb"), 2),
            "rss_growth_second_half_mb_per_h": round(slope("rss_mb", elapsed / 2), 2),
            "heap_blocks_growth_per_h": round(slope("heap_blocks")),
            "settle_s": settle,
            "leaked_tasks": int(at_end["tasks"] - warm["tasks"]),
            "new_tasks": self.new_tasks,  # names of tasks running at the end that were not at the baseline
            # threads Python only registers (`Dummy-N`: native threads, e.g. the LiveKit SDK's, that
            # called into Python) are not ours to end; they are listed under new_threads
            "leaked_threads": len(_own(threads["end"])) - len(_own(threads["warm"])),
            "leaked_fds": int(at_end["fds"] - warm["fds"]),
            "new_threads": new_threads,
            "before_start": before_start, "warm": warm, "at_end": at_end, "after_close": after_close,
            "mqtt": {"connections": self.control.connections, "accepted": self.control.accepted,
                     "rejected": self.control.rejected},
            "errors": {"count": w.n_errors, "last": list(w.errors)[-30:]},
            "turns": [{**r, "t": round(r["wall"] - self.t0, 2)} for r in w.turns],
            "events": list(w.log), "transcript": list(w.texts)[-60:],
            "snapshot": snapshot, "transport_stats": extra, "samples": self.samples,
        }


def _own(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith("Dummy-")]


def mp4_timing(path: Path) -> dict[str, Any]:
    """The recording's own A/V timing (packets demuxed, nothing decoded): where the audio track and
    the video track end, and how many frames it holds. Drift over an hour shows here."""
    import av

    v_end = a_end = 0.0
    frames = 0
    with av.open(str(path)) as c:
        vs, aud = c.streams.video[0], c.streams.audio[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        for pkt in c.demux(vs, aud):
            if pkt.pts is None or pkt.time_base is None:
                continue
            t = float(pkt.pts * pkt.time_base)
            if pkt.stream.type == "video":
                frames += 1
                v_end = max(v_end, t + 1.0 / fps)
            else:
                a_end = max(a_end, t + float((pkt.duration or 0) * pkt.time_base))
    return {"video_end_s": round(v_end, 3), "audio_end_s": round(a_end, 3), "frames": frames,
            "end_offset_ms": round((a_end - v_end) * 1000, 1)}


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = [s["t"] / 60 for s in report["samples"]]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    axes[0].plot(xs, [s["rss_mb"] for s in report["samples"]])
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(xs, [s["av_offset_ms"] for s in report["samples"]])
    axes[1].set_ylabel("A/V offset (ms)")
    turns = [r for r in report["turns"] if r.get("first_audio") is not None and not r["interrupted"]]
    axes[2].plot([r["t"] / 60 for r in turns], [r["first_audio"] for r in turns], "o", ms=3)
    axes[2].set_ylabel("first audio after\nend of speech (s)")
    axes[3].plot(xs, [s["fps"] for s in report["samples"]], label="written")
    if report["samples"] and "rx_fps" in report["samples"][0]:
        axes[3].plot(xs, [s["rx_fps"] for s in report["samples"]], label="received (LiveKit server)")
        axes[3].legend()
    axes[3].set_ylabel("fps")
    axes[-1].set_xlabel("minutes")
    for f in report["fault_log"]:
        for ax in axes:
            ax.axvline(f["t"] / 60, color="red" if not f["survived"] else "grey", lw=0.6, alpha=0.5)
    fig.suptitle(f"soak {report['minutes']} min ({report['transport']}); grey/red lines: faults survived/not")
    fig.tight_layout()
    fig.savefig(path)
    return True


def summary_line(r: dict[str, Any]) -> str:
    b, f, s = r["barge_ins"], r["faults"], r["faults_survived"]
    return (f"soak minutes={r['minutes']:g} turns={r['turns_answered']}/{r['turns_attempted']} "
            f"barge_ins={b['honoured']}/{b['attempted']} faults={sum(s.values())}/{sum(f.values())} "
            f"lost_samples={r['lost_samples']} max_av_offset_ms={r['max_av_offset_ms']:.0f} "
            f"rss_growth_mb_per_h={r['rss_growth_mb_per_h']} leaked_tasks={r['leaked_tasks']} "
            f"leaked_threads={r['leaked_threads']} leaked_fds={r['leaked_fds']}")


def _in_netns(argv: list[str]) -> int:
    """Re-run this script inside a private network namespace (LiveKit mode)."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.livekit_netns import HERE, netns_available

    reason = netns_available()
    if reason is not None:
        print(f"soak: LiveKit mode needs a private network namespace: {reason}", file=sys.stderr)
        return 2
    cmd = ["unshare", "-rn", "sh", str(HERE / "netns_run.sh"), "127.0.0.2", sys.executable, __file__, *argv]
    return subprocess.call(cmd, env={**os.environ, "FLOWACT_SOAK_NETNS": "1", "PYTHONPATH": str(ROOT)})


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


def task_names() -> Counter[str]:
    """The running asyncio tasks by name (what a leak is made of)."""
    return Counter(t.get_name() for t in asyncio.all_tasks())


def main() -> None:
    args = parse_args()
    if args.transport == "livekit" and not os.environ.get("FLOWACT_SOAK_NETNS"):
        sys.exit(_in_netns(sys.argv[1:]))
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
