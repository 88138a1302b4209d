"""Session metrics: per-turn stage latencies, frame counters, fps, A/V offset.

All times come from the injected clock. `snapshot()` is what telemetry (MQTT, preview page) gets;
every finished turn and every snapshot is also logged as one structured JSON line.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from flowact.clock import Clock

__all__ = ["SessionMetrics", "TurnMetrics", "TURN_STAGES"]

log = logging.getLogger("agent.metrics")

TURN_STAGES = (
    "last_word",  # acoustic end of the user's speech (last voiced frame), or the message typed
    "user_end",  # end of turn decided (VAD endpoint) or message typed
    "asr_final",
    "llm_request",  # the turn's LLM call made (after knowledge-base / tutor preparation)
    "llm_first_token",
    "first_piece",  # the reply's first piece (clause) handed to TTS
    "tts_first_audio",
    "first_audio",  # first audible avatar audio written to the sink
    "first_frame",  # first speaking frame written to the sink
)
"""Stage marks of a turn. `latencies()` counts the breakdown from `user_end` (the endpoint decision)
and adds what the user feels, counted from `last_word`: `heard_s` (-> first avatar audio) and
`seen_s` (-> first speaking frame), plus `endpoint_s` (last word -> endpoint decision)."""


@dataclass(slots=True)
class TurnMetrics:
    turn: int
    started: float
    marks: dict[str, float] = field(default_factory=dict)
    engine_s: float = 0.0  # time spent inside engine calls (ASR/LLM/TTS), for overhead
    interrupted: bool = False
    speech_s: float = 0.0  # synthesized speech queued for this turn
    speech_span_s: float = 0.0  # first to last audible sample of that speech
    speech_gaps_s: float = 0.0  # silence played inside that speech while synthesis fell behind (stutter)

    def mark(self, stage: str, t: float) -> None:
        self.marks.setdefault(stage, t)

    def latencies(self) -> dict[str, float]:
        """Seconds from the endpoint decision (or turn start) to each stage, and from the last word
        to what the user hears and sees (see TURN_STAGES)."""
        m = self.marks
        t0 = m.get("user_end", self.started)
        out = {s: round(m[s] - t0, 4) for s in TURN_STAGES if s in m and s not in ("user_end", "last_word")}
        word = m.get("last_word", m.get("user_end"))
        if word is not None:
            if "user_end" in m:
                out["endpoint_s"] = round(m["user_end"] - word, 4)
            if "first_audio" in m:
                out["heard_s"] = round(m["first_audio"] - word, 4)
            if "first_frame" in m:
                out["seen_s"] = round(m["first_frame"] - word, 4)
        return out


class SessionMetrics:
    """Counters and bounded histories for one session."""

    def __init__(self, clock: Clock, *, fps: int, keep_turns: int = 50) -> None:
        self.clock = clock
        self.fps = fps
        self.started = clock.now()
        self.first_frame_at: float | None = None
        self.frames_written = 0
        self.frames_repeated = 0
        self.frames_dropped = 0
        self._dropped_at_write = 0  # frames_dropped when the latest chunk was written
        self.audio_samples_written = 0
        self.sample_rate = 0
        self.turns: deque[TurnMetrics] = deque(maxlen=keep_turns)
        self._frame_times: deque[float] = deque(maxlen=fps * 4)
        self.render_ms: deque[float] = deque(maxlen=fps * 10)
        self.errors = 0
        self.barge_ins = 0
        self.early_asr = {"used": 0, "dropped": 0}  # transcripts begun at a pause (see agent.listening)
        self.early_answers = {"adopted": 0, "cancelled": 0}  # answers begun before the end of turn
        self.warmup_s: float | None = None  # engines warmed before listening (see AgentSession)

    # --- turns ---------------------------------------------------------------------------------
    def turn(self, turn: int) -> TurnMetrics:
        for tm in reversed(self.turns):
            if tm.turn == turn:
                return tm
        tm = TurnMetrics(turn=turn, started=self.clock.now())
        self.turns.append(tm)
        return tm

    def mark(self, turn: int, stage: str, t: float | None = None) -> None:
        self.turn(turn).mark(stage, self.clock.now() if t is None else t)

    def finish_turn(self, turn: int, *, interrupted: bool = False) -> dict[str, Any]:
        tm = self.turn(turn)
        tm.interrupted = interrupted
        record = {"event": "turn", "turn": turn, "interrupted": interrupted, **tm.latencies()}
        record["engine_s"] = round(tm.engine_s, 4)
        log.info(json.dumps(record))
        return record

    # --- frames --------------------------------------------------------------------------------
    def on_frames(self, n: int, audio_samples: int, sample_rate: int) -> None:
        now = self.clock.now()
        if self.first_frame_at is None and n > 0:
            self.first_frame_at = now
        self.frames_written += n
        self._dropped_at_write = self.frames_dropped
        self.audio_samples_written += audio_samples
        self.sample_rate = sample_rate
        for _ in range(n):
            self._frame_times.append(now)

    @property
    def fps_measured(self) -> float:
        if len(self._frame_times) < 2:
            return 0.0
        span = self._frame_times[-1] - self._frame_times[0]
        return (len(self._frame_times) - 1) / span if span > 0 else 0.0

    @property
    def av_offset_ms(self) -> float:
        """Audio minus video duration written so far (ms); 0 means perfectly aligned.

        A dropped frame is a gap in the video timeline: it counts once its chunk (whose audio plays
        on) is written, not while that chunk waits for the sink (a spurious one-chunk offset)."""
        if not self.sample_rate:
            return 0.0
        audio_s = self.audio_samples_written / self.sample_rate
        video_s = (self.frames_written + self._dropped_at_write) / self.fps
        return round((audio_s - video_s) * 1000.0, 2)

    @property
    def ttff_s(self) -> float | None:
        return None if self.first_frame_at is None else round(self.first_frame_at - self.started, 4)

    def snapshot(self) -> dict[str, Any]:
        last = next((t for t in reversed(self.turns) if t.marks), None)
        render = sorted(self.render_ms)
        snap: dict[str, Any] = {
            "uptime_s": round(self.clock.now() - self.started, 3),
            "ttff_s": self.ttff_s,
            "warmup_s": self.warmup_s,
            "fps": round(self.fps_measured, 2),
            "frames": self.frames_written,
            "repeated": self.frames_repeated,
            "dropped": self.frames_dropped,
            "av_offset_ms": self.av_offset_ms,
            "render_ms_p50": round(render[len(render) // 2], 3) if render else None,
            "turns": len(self.turns),
            "barge_ins": self.barge_ins,
            "early_asr": dict(self.early_asr),
            "early_answers": dict(self.early_answers),
            "errors": self.errors,
        }
        if last is not None:
            snap["last_turn"] = {"turn": last.turn, **last.latencies()}
        return snap

    def turn_table(self) -> list[dict[str, Any]]:
        return [
            {"turn": t.turn, "interrupted": t.interrupted, "speech_s": round(t.speech_s, 4),
             "speech_span_s": round(t.speech_span_s, 4), "speech_gaps_s": round(t.speech_gaps_s, 4),
             **t.latencies()}
            for t in self.turns
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot(), "turns": [asdict(t) for t in self.turns]}
