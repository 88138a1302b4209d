"""The parts of `bench/soak.py`: fault-injecting engine subclasses, the sample ledger, the synthetic
user's microphone, the session watcher, the MQTT user and the LiveKit room user.

Faults are injected by subclassing the real plugin classes (built from the same config), so every
optional capability of the engine (Startable, Preparable, AudioInput, TextInput, ...) is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.config import PluginSpec
from agent.frames import AudioChunk, SpeechChunk, VideoChunk
from agent.interfaces import SessionObserver
from agent.turn_runner import LEAD_KEEP_S, ONSET_LEVEL
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.types import AgentState

INPUT_RATE = 16000
AUDIBLE = 300  # |int16| above this: the chunk carries speech


# --- faults -------------------------------------------------------------------------------------


@dataclass
class Faults:
    """What is armed now; each armed fault fires once."""

    tts_raise: bool = False
    asr_raise: bool = False
    sink_stall_s: float = 0.0
    fired: dict[str, int] = field(default_factory=dict)

    def take(self, name: str) -> bool:
        if not getattr(self, name):
            return False
        setattr(self, name, False)
        self.fired[name] = self.fired.get(name, 0) + 1
        return True


def build_faulty(spec: PluginSpec, kind: str, faults: Faults, ledger: AudioLedger | None = None, *,
                 handoff: bool = False, heard: Callable[[np.ndarray], None] | None = None, **context: Any) -> Any:
    """Build `spec`'s plugin as a subclass whose engine call raises (tts/asr) or whose write stalls
    (sink) once when armed; the TTS subclass reports each synthesized chunk to `ledger`, the sink
    each written chunk's audio (`handoff`: the LiveKit sink's audio as handed to the SDK)."""
    base = spec.cls
    ns: dict[str, Any] = {}

    def raising(method: Callable[[Any, Any], AsyncIterator[Any]], armed: str) -> Callable[..., AsyncIterator[Any]]:
        """`method` (the engine's own call), raising once instead while `faults.<armed>` is set."""
        async def call(self: Any, arg: Any) -> AsyncIterator[Any]:
            if faults.take(armed):
                raise RuntimeError(f"soak: injected {kind.upper()} failure")
            async for item in method(self, arg):
                yield item
        return call

    if kind == "tts":
        async def synthesize(self: Any, text: str) -> AsyncIterator[SpeechChunk]:
            async for chunk in base.synthesize(self, text):
                # booked once the caller has taken it: the turn runner asks for the next chunk (or
                # ends the stream) only after it queued this one in the builder as its turn's, a
                # held early answer only after `release(turn)`. A stream closed here instead
                # (GeneratorExit) was cancelled: a barge-in, or a held answer no turn adopted.
                yield chunk
                if ledger is not None:
                    ledger.synthesized(chunk.audio)
        ns = {"_synthesize": raising(base._synthesize, "tts_raise"), "synthesize": synthesize}
    elif kind == "asr":
        ns = {"_transcribe": raising(base._transcribe, "asr_raise")}
    elif kind == "sink":
        async def write(self: Any, chunk: VideoChunk) -> None:
            if faults.sink_stall_s:
                stall, faults.sink_stall_s = faults.sink_stall_s, 0.0
                faults.fired["sink_stall"] = faults.fired.get("sink_stall", 0) + 1
                await asyncio.sleep(stall)
            if ledger is not None and not handoff:
                ledger.written(chunk.audio, chunk.sample_rate)
            if heard is not None and not handoff:
                heard(chunk.audio)
            await base.write(self, chunk)
        ns = {"write": write}
        if handoff:  # LiveKit: count what is handed to the SDK (after the sink's own queue), not write()
            async def _send_audio(self: Any, pcm: np.ndarray) -> None:
                dropped = self.audio_dropped
                await base._send_audio(self, pcm)
                if ledger is not None and self.audio_dropped == dropped:
                    ledger.written(pcm, self.sample_rate)
                if heard is not None and self.audio_dropped == dropped:
                    heard(pcm)
            ns["_send_audio"] = _send_audio
    cls = type(f"Soak{base.__name__}", (base,), ns)
    return cls(spec.config, **context)


# --- lost samples, from the PCM itself ---------------------------------------------------------------


class AudioLedger:
    """Every synthesized chunk of a turn must reach the sink sample for sample.

    The TTS subclass hands in each chunk once the turn runner has taken it, tagged with the
    session's current turn then: a held early answer (`agent.early_answer`) is taken only after the
    turn that adopts it began, so its audio is booked to that turn, and a cancelled one's chunks are
    never taken (never meant to be heard: not booked). The sink subclass hands in every chunk's
    audio. Once a turn has ended (plus a grace for the last chunk in flight) its chunks are looked
    up in the written stream by content: the first 256 samples from the chunk's first loud sample
    are searched, then every sample of the chunk is compared. `lost` = synthesized samples of
    uninterrupted turns not found verbatim. Memory is bounded: at most `keep_s` of written audio is
    kept.
    """

    def __init__(self, sample_rate: int, current_turn: Callable[[], int], keep_s: float = 120.0) -> None:
        self.rate = sample_rate
        self.current_turn = current_turn
        self.keep = int(keep_s * sample_rate)
        self.pending: dict[int, list[np.ndarray]] = {}
        self.buf = np.zeros(0, np.int16)
        self.lost = 0
        self.checked = 0  # samples of uninterrupted turns compared
        self.turns_checked = 0
        self.lossy_turns: list[dict[str, int]] = []

    def synthesized(self, audio: AudioChunk) -> None:
        """A chunk the turn runner took for the current turn (see the class docstring)."""
        pcm = audio.samples
        turn = self.current_turn()
        if turn not in self.pending:  # the turn runner plays a turn's first word without the engine's lead-in
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_LEVEL)
            cut = int(loud[0]) - int(LEAD_KEEP_S * audio.sample_rate) if len(loud) else 0
            pcm = pcm[max(0, cut):]
        if audio.sample_rate != self.rate:  # as the turn runner does before the builder
            pcm = float_to_int16(resample(int16_to_float(pcm), audio.sample_rate, self.rate))
        self.pending.setdefault(turn, []).append(np.array(pcm, np.int16))
        for old in [t for t in self.pending if t < turn - 8]:  # turns that never reported an end
            del self.pending[old]

    def written(self, pcm: np.ndarray, rate: int) -> None:
        if rate != self.rate or not len(pcm):
            return
        self.buf = np.concatenate([self.buf, pcm.astype(np.int16, copy=False)])
        if len(self.buf) > self.keep:
            self.buf = self.buf[-self.keep:]

    def turn_done(self, turn: int, interrupted: bool, final: bool = True) -> int | None:
        """Check `turn` (call once its last chunk can have been written); returns its lost samples.
        Not `final`: None (nothing checked, the turn stays pending) while the written stream ends
        inside the turn's audio, its last chunk found only in part or its tail not found at all: the
        writer is behind (a sink's own queue after a reconnection can hold seconds), so ask again."""
        chunks = self.pending.get(turn, [])
        if interrupted or not chunks:
            self.pending.pop(turn, None)
            return 0
        raw = self.buf.tobytes()
        cursor, lost, checked, found_upto, behind = 0, 0, 0, -1, False
        for i, c in enumerate(chunks):
            checked += len(c)
            loud = np.flatnonzero(np.abs(c.astype(np.int32)) > AUDIBLE)
            if not len(loud):
                continue  # a silent chunk cannot be told apart from silence: not counted either way
            o = int(loud[0])
            key = c[o : o + 256].tobytes()
            pos = raw.find(key, cursor * 2)
            while pos >= 0 and pos % 2:
                pos = raw.find(key, pos + 1)
            if pos < 0:
                lost += len(c)
                continue
            start = pos // 2 - o
            lo = max(0, start)
            n = min(len(c) - (lo - start), len(self.buf) - lo)
            behind = n < len(c) - (lo - start)  # the written stream ends inside this chunk
            same = int(np.count_nonzero(self.buf[lo : lo + n] == c[lo - start : lo - start + n]))
            lost += len(c) - same
            cursor, found_upto = lo + n, i
        tail_missing = any(np.abs(c.astype(np.int32)).max(initial=0) > AUDIBLE for c in chunks[found_upto + 1 :])
        if not final and lost and (behind or tail_missing):
            return None
        self.pending.pop(turn, None)
        self.checked += checked
        if cursor:
            self.buf = self.buf[cursor:]
        self.lost += lost
        self.turns_checked += 1
        if lost:
            self.lossy_turns.append({"turn": turn, "lost": lost, "synthesized": sum(len(c) for c in chunks)})
            del self.lossy_turns[:-50]
        return lost


# --- the synthetic user's microphone -----------------------------------------------------------


class SyntheticMic:
    """20 ms chunks in real time: silence, or the next queued utterance (espeak's voice)."""

    def __init__(self, voice: Any) -> None:
        self.voice = voice
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=4)
        self.onsets: deque[float] = deque(maxlen=64)  # wall time of each utterance's first loud sample
        self.n_onsets = 0  # onsets so far (the deque above is bounded: never count by its length)
        self.spoken = 0

    async def render(self, text: str) -> np.ndarray:
        parts = [resample(int16_to_float(c.audio.samples), c.audio.sample_rate, INPUT_RATE)
                 async for c in self.voice.synthesize(text)]
        return float_to_int16(np.concatenate(parts)) if parts else np.zeros(0, np.int16)

    async def speak(self, text: str) -> float:
        """Queue an utterance; returns its duration in seconds."""
        pcm = await self.render(text)
        await self._queue.put(pcm)
        self.spoken += 1
        return len(pcm) / INPUT_RATE

    async def audio(self) -> AsyncIterator[AudioChunk]:
        n = INPUT_RATE // 50
        t0, sent = time.monotonic(), 0
        pending = np.zeros(0, np.int16)
        onset: int | None = None
        while True:
            if not len(pending) and not self._queue.empty():
                pending = self._queue.get_nowait()
                loud = np.flatnonzero(np.abs(pending.astype(np.int32)) > AUDIBLE)
                onset = int(loud[0]) if len(loud) else None
            block, pending = pending[:n], pending[n:]
            if len(block) < n:
                block = np.concatenate([block, np.zeros(n - len(block), np.int16)])
            await asyncio.sleep(max(0.0, t0 + sent / INPUT_RATE - time.monotonic()))
            if onset is not None and onset < n:
                self.onsets.append(time.monotonic() + onset / INPUT_RATE)
                self.n_onsets += 1
                onset = None
            elif onset is not None:
                onset -= n
            yield AudioChunk(block, INPUT_RATE, pts=sent / INPUT_RATE)
            sent += n


# --- what the session reports ----------------------------------------------------------------------


@dataclass
class Watch(SessionObserver):
    """Events, states and the chunks written, as the session reports them (bounded histories)."""

    state: AgentState = AgentState.IDLE
    turns: list[dict[str, Any]] = field(default_factory=list)  # one small record per turn
    failed: list[float] = field(default_factory=list)  # wall times of turns (or questions) lost to an error
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    n_errors: int = 0
    interrupts: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200))  # (t, reason)
    # times speech reached the sink: handed to it (`handed`, the agent's decision; LiveKit: to the SDK)
    # and its write done (`on_video`; a sink behind on a starved CPU finishes a write late)
    audible: deque[float] = field(default_factory=lambda: deque(maxlen=4000))
    written: deque[float] = field(default_factory=lambda: deque(maxlen=4000))
    chunks: int = 0  # chunks written so far
    texts: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=200))  # (t, role, text)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    log: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=300))
    on_turn: Callable[[dict[str, Any]], None] | None = None
    states: deque[tuple[float, AgentState]] = field(default_factory=lambda: deque(maxlen=400))  # (t, state)

    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        self.changed.set()
        now = time.monotonic()
        if kind not in ("transcript",):
            self.log.append((round(now, 2), kind, json.dumps(payload, default=str)[:160]))
        if kind == "turn":
            rec = {"wall": now, "turn": payload.get("turn"), "interrupted": bool(payload.get("interrupted")),
                   "first_audio": payload.get("first_audio")}
            self.turns.append(rec)
            if self.on_turn is not None:
                self.on_turn(rec)
        elif kind == "error":
            self.n_errors += 1
            if "turn" in payload or payload.get("stage") == "asr":  # a turn failed, or a question was lost
                self.failed.append(now)
            self.errors.append({"t": now, **payload})
        elif kind == "interrupt":
            self.interrupts.append((now, str(payload.get("reason"))))
        elif kind == "transcript" and payload.get("final"):
            self.texts.append((now, str(payload.get("role")), str(payload.get("text"))[:200]))

    def ended(self) -> int:
        """Turns ended so far: answered, interrupted or failed."""
        return len(self.turns) + len(self.failed)

    def on_state(self, state: AgentState) -> None:
        self.changed.set()
        self.state = state
        self.states.append((time.monotonic(), state))

    def state_at(self, t: float) -> AgentState | None:
        """The agent's state at wall time `t` (None: older than the kept history)."""
        found = None
        for when, state in self.states:
            if when > t:
                break
            found = state
        return found

    def on_video(self, chunk: VideoChunk) -> None:
        self.chunks += 1
        if len(chunk.audio) and int(np.abs(chunk.audio).max()) > AUDIBLE:
            self.written.append(time.monotonic())

    def handed(self, pcm: np.ndarray) -> None:
        """The sink was handed this audio (called by the soak's sink subclass)."""
        if len(pcm) and int(np.abs(pcm).max()) > AUDIBLE:
            self.audible.append(time.monotonic())

    async def until(self, pred: Callable[[], bool], within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while not pred():
                    self.changed.clear()
                    await self.changed.wait()
        return pred()


def process_sample() -> dict[str, float]:
    """RSS, Python heap blocks, threads, asyncio tasks, open descriptors and CPU seconds (user +
    system, all threads) of this process."""
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    cpu = os.times()
    return {"cpu_s": cpu.user + cpu.system,
        "rss_mb": rss_pages * os.sysconf("SC_PAGE_SIZE") / 1e6, "heap_blocks": float(sys.getallocatedblocks()),
        "threads": float(threading.active_count()), "tasks": float(len(asyncio.all_tasks())),
        "fds": float(len(os.listdir("/proc/self/fd"))),
    }


def _socket_protocols() -> dict[str, str]:
    """Socket inode -> its protocol (`tcp`, `udp6`, `unix`, ...), from /proc/net."""
    out: dict[str, str] = {}
    for proto, col in (("tcp", 9), ("tcp6", 9), ("udp", 9), ("udp6", 9), ("unix", 6), ("netlink", -1)):
        with contextlib.suppress(OSError):
            with open(f"/proc/net/{proto}") as f:
                for line in f.read().splitlines()[1:]:
                    cols = line.split()
                    if len(cols) > max(col, 0):
                        out[cols[col]] = proto
    return out


def fd_kinds() -> Counter[str]:
    """Open descriptors by kind: `pipe`, `anon_inode:[eventfd]`, a file's path, or a socket by protocol
    and owner: `socket:udp (python)` is held by a Python socket object (asyncio, aiortc, the MQTT
    client), `socket:udp (native)` by native code only (libwebrtc in the LiveKit SDK's FFI library)."""
    protocols = _socket_protocols()
    python = {o.fileno() for o in gc.get_objects() if isinstance(o, socket.socket)}
    out: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                owner = "python" if int(fd) in python else "native"
                target = f"socket:{protocols.get(target[8:-1], '?')} ({owner})"
            elif target.startswith("pipe:"):
                target = "pipe"
            out[target] += 1
    return out


def task_names() -> Counter[str]:
    """The running asyncio tasks by name and coroutine (what a leak is made of: an SDK's unnamed
    `Task-N` is told by the coroutine it runs)."""
    out: Counter[str] = Counter()
    for t in asyncio.all_tasks():
        name = t.get_name()
        if name.startswith("Task-"):
            coro = t.get_coro()
            code = coro.cr_code if inspect.iscoroutine(coro) else None
            where = f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_qualname}" if code else repr(coro)
            name = f"Task-N {where}"
        out[name] += 1
    return out


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


# --- the MQTT operator ----------------------------------------------------------------------------


class MqttUser:
    """Publishes commands to the agent through the real broker and watches its `status`."""

    def __init__(self, host: str, port: int, root: str) -> None:
        self.host, self.port, self.root = host, port, root

    async def command(self, kind: str, payload: dict[str, Any], within_s: float = 10.0) -> bool:
        import aiomqtt

        with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
            async with asyncio.timeout(within_s), aiomqtt.Client(self.host, self.port) as c:
                await c.publish(f"{self.root}/cmd/{kind}", json.dumps(payload).encode(), qos=2)
                return True
        return False

    async def wait_online(self, within_s: float) -> bool:
        """Until the agent's retained `status` says `online` (it republishes it on every connect)."""
        import aiomqtt

        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                async with asyncio.timeout(max(0.5, deadline - time.monotonic())), \
                        aiomqtt.Client(self.host, self.port) as c:
                    await c.subscribe(f"{self.root}/status", qos=1)
                    async for m in c.messages:
                        if m.payload == b"online":
                            return True
            await asyncio.sleep(0.2)
        return False
