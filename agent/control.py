"""ControlBuilder: speech + intent tags + state -> one ControlChunk per video chunk, always.

Synchronous and I/O-free: the session's media loop calls `next_chunk()` on the media clock. When
nobody speaks it emits idle / listening / thinking chunks (silent audio), so the generator never
starves. Every chunk carries the exact audio slice it plays with, per-frame log-mel and energy,
visemes (phoneme timings with lookahead, else audio features), eased expression weights, events,
head pose, blink, gaze and the agent state. Memory is bounded: queued speech is bounded by the
session's back-pressure and everything else is fixed-size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from agent.clock import Clock
from agent.frames import AudioChunk, IntentTag, SpeechChunk
from agent.intents import EMOTIONS
from flowact.audio import frame_features, int16_to_float
from flowact.motion.procedural import ProceduralDynamics
from flowact.motion.visemes import VisemeSmoother, viseme_targets, visemes_from_audio
from flowact.types import EXPRESSIONS, AgentState, ControlChunk, ControlEvent

__all__ = ["ControlBuilder", "paced_chunks"]

_EXPR_INDEX = {name: i for i, name in enumerate(EXPRESSIONS)}


@dataclass(slots=True)
class _Segment:
    """Queued speech: samples at the builder rate and timings relative to its first sample."""

    audio: np.ndarray
    starts: list[float]
    durations: list[float]
    symbols: list[str]
    tags: list[tuple[float, IntentTag]] = field(default_factory=list)  # (seconds into segment, tag)
    pos: int = 0  # samples already emitted


class ControlBuilder:
    def __init__(
        self,
        *,
        fps: int = 25,
        frames_per_chunk: int = 4,
        sample_rate: int = 24000,
        seed: int = 0,
        lookahead_s: float = 0.06,
        expression_ease_s: float = 0.35,
    ) -> None:
        if (frames_per_chunk * sample_rate) % fps:
            raise ValueError("frames_per_chunk * sample_rate must be divisible by fps")
        self.fps = fps
        self.n = frames_per_chunk
        self.sample_rate = sample_rate
        self.hop = sample_rate // fps if sample_rate % fps == 0 else sample_rate / fps
        self.samples_per_chunk = frames_per_chunk * sample_rate // fps
        self.lookahead_s = lookahead_s
        self._ease = 1.0 - float(np.exp(-1.0 / (fps * expression_ease_s)))
        self._dyn = ProceduralDynamics(fps=fps, seed=seed)
        self._smoother = VisemeSmoother(fps)
        self._segments: deque[_Segment] = deque()
        self._immediate: deque[IntentTag] = deque(maxlen=32)
        self._expr = np.zeros(len(EXPRESSIONS), np.float32)
        self._expr_target = np.zeros(len(EXPRESSIONS), np.float32)
        self._state = AgentState.IDLE
        self._interrupt = False
        self._index = 0
        self.speaking = False
        self._user_energy = 0.0

    # --- inputs ---------------------------------------------------------------------------------
    def push_speech(self, speech: SpeechChunk) -> None:
        if speech.audio.sample_rate != self.sample_rate:
            raise ValueError(f"speech at {speech.audio.sample_rate} Hz; the builder runs at {self.sample_rate} Hz")
        dur = speech.audio.duration
        seg = _Segment(
            audio=speech.audio.samples,
            starts=[p.start for p in speech.phonemes],
            durations=[p.duration for p in speech.phonemes],
            symbols=[p.phoneme for p in speech.phonemes],
        )
        for tag in speech.tags:
            seg.tags.append((self._tag_time(speech, tag, dur), tag))
        seg.tags.sort(key=lambda x: x[0])
        self._segments.append(seg)

    def _tag_time(self, speech: SpeechChunk, tag: IntentTag, dur: float) -> float:
        if tag.time is not None:
            return min(max(0.0, tag.time), dur)
        for w in speech.words:  # first word at or after the tag
            if w.char_offset >= tag.char_offset:
                return w.start
        if speech.text:
            frac = min(1.0, tag.char_offset / max(1, len(speech.text)))
            return frac * dur
        return 0.0

    def push_tag(self, tag: IntentTag) -> None:
        """Apply a tag now (tool call, MQTT command)."""
        self._immediate.append(tag)

    def set_state(self, state: AgentState) -> None:
        self._state = state

    def push_user_audio(self, chunk: AudioChunk) -> None:
        """The user's microphone (listening cues)."""
        x = int16_to_float(chunk.samples)
        rms = float(np.sqrt(np.mean(x * x) + 1e-12))
        level = float(np.clip((20 * np.log10(rms + 1e-9) + 60.0) / 60.0, 0.0, 1.0))
        if self._state == AgentState.LISTENING or self._state == AgentState.IDLE:
            self._dyn.listen(level, chunk.duration)
        self._user_energy = level

    def interrupt(self) -> None:
        """Barge-in: drop all queued speech; the next chunk is flagged and eases to listening."""
        self._segments.clear()
        self._interrupt = True
        self._state = AgentState.LISTENING
        self._smoother.reset()

    @property
    def speech_pending_s(self) -> float:
        return sum(len(s.audio) - s.pos for s in self._segments) / self.sample_rate

    @property
    def state(self) -> AgentState:
        return self._state

    # --- output ---------------------------------------------------------------------------------
    def next_chunk(self) -> ControlChunk:
        n, sr = self.n, self.sample_rate
        need = self.samples_per_chunk
        audio = np.zeros(need, np.int16)
        targets = np.zeros((n, 15), np.float32)
        have_timing = np.zeros(n, bool)
        events: list[ControlEvent] = []
        filled = 0
        frame_len = need / n
        while filled < need and self._segments:
            seg = self._segments[0]
            take = min(need - filled, len(seg.audio) - seg.pos)
            audio[filled : filled + take] = seg.audio[seg.pos : seg.pos + take]
            # frames whose centre falls in this slice take their viseme from this segment's timings
            for f in range(n):
                centre = (f + 0.5) * frame_len
                if filled <= centre < filled + take and seg.starts:
                    t = (seg.pos + centre - filled) / sr + self.lookahead_s
                    targets[f] = viseme_targets(seg.starts, seg.durations, seg.symbols, np.array([t]))[0]
                    have_timing[f] = True
            t0, t1 = seg.pos / sr, (seg.pos + take) / sr
            while seg.tags and seg.tags[0][0] < t1:
                t_tag, tag = seg.tags.pop(0)
                frame = int(np.clip((filled + (max(t_tag, t0) - t0) * sr) / frame_len, 0, n - 1))
                self._apply_tag(tag, frame, events)
            seg.pos += take
            filled += take
            if seg.pos >= len(seg.audio):
                for _, tag in seg.tags:  # tags anchored past the end
                    self._apply_tag(tag, n - 1, events)
                self._segments.popleft()
        self.speaking = filled > 0
        while self._immediate:
            self._apply_tag(self._immediate.popleft(), 0, events)
        mel, energy = frame_features(int16_to_float(audio), sr, self.fps, n)
        if not have_timing.all():
            from_audio = visemes_from_audio(mel, energy)
            targets[~have_timing] = from_audio[~have_timing]
        visemes = self._smoother(targets)
        expressions = self._expressions(n)
        state = AgentState.SPEAKING if self.speaking and self._state != AgentState.LISTENING else self._state
        pose, blink, gaze = self._dyn.step(n, energy, state, tuple(events))
        chunk = ControlChunk(
            index=self._index, pts=self._index * n / self.fps, fps=self.fps, n_frames=n, sample_rate=sr,
            audio=audio, mel=mel, energy=energy, visemes=visemes, expressions=expressions,
            head_pose=pose, blink=blink, gaze=gaze, state=state, events=tuple(events),
            interrupt=self._interrupt,
        )
        self._interrupt = False
        self._index += 1
        return chunk

    def _apply_tag(self, tag: IntentTag, frame: int, events: list[ControlEvent]) -> None:
        if tag.name in EMOTIONS:
            self._expr_target[:] = 0.0
            if tag.name != "neutral":
                self._expr_target[_EXPR_INDEX[tag.name]] = tag.intensity
            return
        events.append(ControlEvent(frame=frame, name=tag.name, intensity=tag.intensity))

    def _expressions(self, n: int) -> np.ndarray:
        target = self._expr_target.copy()
        if self._state == AgentState.THINKING:
            target[_EXPR_INDEX["thinking"]] = max(target[_EXPR_INDEX["thinking"]], 0.4)
        out = np.empty((n, len(EXPRESSIONS)), np.float32)
        for i in range(n):
            self._expr += (target - self._expr) * self._ease
            out[i] = self._expr
        return out


async def paced_chunks(
    builder: ControlBuilder, clock: Clock, *, start: float, lead_s: float = 0.0
) -> AsyncIterator[ControlChunk]:
    """Yield chunk k when `clock.now() >= start + k * chunk_duration - lead_s`, forever."""
    k = 0
    dur = builder.n / builder.fps
    while True:
        await clock.sleep_until(start + k * dur - lead_s)
        yield builder.next_chunk()
        k += 1
