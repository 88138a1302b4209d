"""ControlBuilder: speech + intent tags + state -> one ControlChunk per video chunk, always.

Synchronous, no I/O, no clock: the session's media loop calls `next_chunk()` on the media clock
(`flowact.control.paced_chunks` does that pacing on an injected `flowact.clock.Clock`). When nobody speaks it emits
idle / listening / thinking chunks with silent audio, so the generator never starves. Each chunk
carries the exact audio slice it plays with, per-frame log-mel and energy, visemes (phoneme timings
with lookahead, else audio features), eased expression weights, events, head pose, blink, gaze and
the agent state.

Tags inside a `SpeechChunk` are anchored to time through its word timings, else its phoneme
timings (proportionally over the voiced span), else proportionally over the audio. Emotion tags
set the held expression (eased in and out over `expression_ease_s`; relaxed back to neutral
after `emotion_hold_s` without speech, or after the `duration_s` given to `push_tag`, counted on
the builder's own chunk timeline); gesture tags become `ControlEvent`s on their frame. Head pose,
blinks and gaze come from `flowact.motion.procedural.ProceduralDynamics`.
Memory is bounded: queued speech is capped at `max_pending_s` and everything else is fixed-size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from flowact.audio import frame_features, frame_pitch, int16_to_float
from flowact.control.vocabulary import EMOTIONS, emotion_index
from flowact.motion.procedural import ProceduralDynamics
from flowact.motion.visemes import V, VisemeSmoother, normalize_phonemes, viseme_targets_arrays, visemes_from_audio
from flowact.types import (
    EXPRESSIONS,
    VISEMES,
    AgentState,
    AudioChunk,
    ControlChunk,
    ControlEvent,
    FloatArray,
    IntentTag,
    SpeechChunk,
)

__all__ = ["ControlBuilder"]

_THINKING = EXPRESSIONS.index("thinking")


@dataclass(slots=True)
class _Segment:
    """Queued speech: samples at the builder rate, visemes and tags in seconds from its first sample."""

    audio: np.ndarray
    v_start: FloatArray
    v_end: FloatArray
    v_idx: np.ndarray
    v_end_max: FloatArray  # running max of v_end (for a binary search of the window)
    tags: deque[tuple[float, IntentTag]] = field(default_factory=deque)
    pos: int = 0  # samples already emitted

    @property
    def timed(self) -> bool:
        return len(self.v_idx) > 0


class ControlBuilder:
    """Builds the control timeline chunk by chunk (see the module docstring)."""

    def __init__(
        self,
        *,
        fps: int = 25,
        frames_per_chunk: int = 4,
        sample_rate: int = 24000,
        seed: int = 0,
        lookahead_s: float = 0.06,
        expression_ease_s: float = 0.35,
        emotion_hold_s: float = 8.0,
        max_pending_s: float = 600.0,
    ) -> None:
        if fps <= 0 or frames_per_chunk <= 0 or sample_rate <= 0:
            raise ValueError("fps, frames_per_chunk and sample_rate must be > 0")
        if (frames_per_chunk * sample_rate) % fps:
            raise ValueError(f"frames_per_chunk * sample_rate ({frames_per_chunk * sample_rate}) must divide by fps")
        if not 0.0 <= lookahead_s <= 0.2:
            raise ValueError(f"lookahead_s={lookahead_s} outside 0..0.2 s")
        self.fps = fps
        self.frames_per_chunk = frames_per_chunk
        self.sample_rate = sample_rate
        self.samples_per_chunk = frames_per_chunk * sample_rate // fps
        self.chunk_duration = frames_per_chunk / fps
        self.lookahead_s = lookahead_s
        self.emotion_hold_s = emotion_hold_s
        self.max_pending_s = max_pending_s
        self._ease = 1.0 - float(np.exp(-1.0 / (fps * expression_ease_s)))
        self._dyn = ProceduralDynamics(fps=fps, seed=seed)
        self._smoother = VisemeSmoother(fps)
        self._segments: deque[_Segment] = deque()
        self._pending = 0  # samples queued
        self._immediate: deque[tuple[IntentTag, float | None]] = deque(maxlen=32)
        self._expr = np.zeros(len(EXPRESSIONS), np.float32)
        self._expr_target = np.zeros(len(EXPRESSIONS), np.float32)
        self._since_emotion = 0.0  # seconds of timeline since the last emotion tag or speech
        self._emotion_until: float | None = None  # timeline second the held emotion expires at
        self._state = AgentState.IDLE
        self._interrupt = False
        self._index = 0
        self._speaking = False
        self._dry = 0  # silent samples emitted since the queued speech ran out (0 while speech is queued)
        self._ctx = int(round(sample_rate / fps))  # one frame of audio context each side for the features
        self._tail = np.zeros(self._ctx, np.int16)
        self._silent_mel, self._silent_energy = frame_features(np.zeros(self.samples_per_chunk, np.float32),
                                                               sample_rate, fps, frames_per_chunk)

    # --- inputs ---------------------------------------------------------------------------------
    def push_speech(self, speech: SpeechChunk) -> None:
        """Queue synthesized speech (at `sample_rate`); its tags are anchored in time here."""
        if speech.audio.sample_rate != self.sample_rate:
            raise ValueError(f"speech at {speech.audio.sample_rate} Hz; the builder runs at {self.sample_rate} Hz")
        n = len(speech.audio.samples)
        if n == 0:
            for tag in speech.tags:
                self.push_tag(tag)
            return
        if (self._pending + n) / self.sample_rate > self.max_pending_s:
            raise ValueError(f"more than {self.max_pending_s:.0f} s of speech queued; apply back-pressure")
        tv = sorted(normalize_phonemes(speech.phonemes), key=lambda v: v.start)
        seg = _Segment(
            audio=np.ascontiguousarray(speech.audio.samples, dtype=np.int16),
            v_start=np.array([v.start for v in tv], np.float64),
            v_end=np.array([v.end for v in tv], np.float64),
            v_idx=np.array([v.viseme for v in tv], np.int64),
            v_end_max=np.maximum.accumulate(np.array([v.end for v in tv], np.float64)),
        )
        dur = n / self.sample_rate
        timed = sorted(((self._tag_time(speech, tag, seg, dur), tag) for tag in speech.tags), key=lambda x: x[0])
        seg.tags.extend(timed)
        self._segments.append(seg)
        self._dry = 0
        self._pending += n

    def _tag_time(self, speech: SpeechChunk, tag: IntentTag, seg: _Segment, dur: float) -> float:
        if tag.time is not None:
            return min(max(0.0, tag.time), dur)
        if speech.words:
            for w in speech.words:  # the first word at or after the tag
                if w.char_offset >= tag.char_offset:
                    return min(max(0.0, w.start), dur)
            last = speech.words[-1]
            return min(last.start + last.duration, dur)
        frac = min(1.0, max(0.0, tag.char_offset / max(1, len(speech.text))))
        voiced = seg.v_idx != V["sil"]
        if voiced.any():  # proportionally over the voiced span of the phoneme timings
            t0, t1 = float(seg.v_start[voiced][0]), float(seg.v_end[voiced][-1])
            return min(max(0.0, t0 + frac * (t1 - t0)), dur)
        return frac * dur

    def push_tag(self, tag: IntentTag, duration_s: float | None = None) -> None:
        """Apply a tag at the next chunk (tool call, MQTT command).

        An emotion with `duration_s` eases back to neutral after that many seconds of the builder's
        timeline (its chunks, not the wall clock) unless another emotion replaced it first.
        """
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        self._immediate.append((tag, duration_s))

    def set_state(self, state: AgentState) -> None:
        self._state = AgentState(state)

    def push_user_audio(self, chunk: AudioChunk) -> None:
        """The user's microphone (16 kHz mono): small listening nods at their pauses."""
        if len(chunk.samples) == 0:
            return
        x = int16_to_float(chunk.samples)
        rms = float(np.sqrt(np.mean(x * x) + 1e-12))
        level = float(np.clip((20 * np.log10(rms + 1e-9) + 60.0) / 60.0, 0.0, 1.0))
        if self._state in (AgentState.LISTENING, AgentState.IDLE):
            self._dyn.listen(level, chunk.duration)

    def interrupt(self) -> None:
        """Barge-in: drop all queued speech; the next chunk has `interrupt=True` and state listening."""
        self._segments.clear()
        self._pending = 0
        self._interrupt = True
        self._state = AgentState.LISTENING

    @property
    def dry_samples(self) -> int:
        """Silent samples the timeline has played since the queued speech ran out (0 while speech is
        queued): read before pushing a turn's next speech, the gap a listener heard inside the answer
        because synthesis fell behind the timeline."""
        return self._dry

    @property
    def speech_pending_s(self) -> float:
        """Seconds of queued speech not yet emitted."""
        return self._pending / self.sample_rate

    @property
    def speaking(self) -> bool:
        """Whether the last chunk carried speech."""
        return self._speaking

    @property
    def state(self) -> AgentState:
        return self._state

    # --- output ---------------------------------------------------------------------------------
    def next_chunk(self) -> ControlChunk:
        """The next chunk on the timeline (never blocks; silence when no speech is queued)."""
        n, sr, fps = self.frames_per_chunk, self.sample_rate, self.fps
        need = self.samples_per_chunk
        targets, timed = self._timing_targets()
        audio = np.zeros(need, np.int16)
        events: list[ControlEvent] = []
        filled = 0
        while filled < need and self._segments:
            seg = self._segments[0]
            take = min(need - filled, len(seg.audio) - seg.pos)
            audio[filled : filled + take] = seg.audio[seg.pos : seg.pos + take]
            t0, t1 = seg.pos / sr, (seg.pos + take) / sr
            done = seg.pos + take >= len(seg.audio)
            while seg.tags and (seg.tags[0][0] < t1 or done):
                t_tag, tag = seg.tags.popleft()
                frame = int((filled + max(0.0, t_tag - t0) * sr) * fps / sr)
                self._apply_tag(tag, None, min(max(frame, 0), n - 1), events)
            seg.pos += take
            filled += take
            if done:
                self._segments.popleft()
        self._pending -= filled
        self._speaking = filled > 0
        self._dry = 0 if self._segments else self._dry + need - filled
        while self._immediate:
            self._apply_tag(*self._immediate.popleft(), frame=0, events=events)
        mel, energy = self._features(audio)
        if not timed.all():
            targets[~timed] = visemes_from_audio(mel[~timed], energy[~timed])
        visemes = self._smoother(targets)
        expressions = self._expressions(filled > 0)
        state = AgentState.SPEAKING if filled > 0 else self._state
        loud = filled > 0 and float(energy.max()) >= 0.45  # pitch only matters for stress on loud frames
        pitch = frame_pitch(int16_to_float(audio), sr, fps, n) if loud else None
        pose, blink, gaze = self._dyn.step(n, energy, state, tuple(events), pitch)
        chunk = ControlChunk(
            index=self._index, pts=self._index * self.chunk_duration, fps=fps, n_frames=n, sample_rate=sr,
            audio=audio, mel=mel, energy=energy, visemes=visemes, expressions=expressions,
            head_pose=pose, blink=blink, gaze=gaze, state=state, events=tuple(events),
            interrupt=self._interrupt,
        )
        self._interrupt = False
        self._index += 1
        return chunk

    def _features(self, audio: np.ndarray) -> tuple[FloatArray, FloatArray]:
        """Per-frame log-mel and energy, with one frame of real audio context on each side."""
        head = self._peek(self._ctx)
        tail, self._tail = self._tail, audio[-self._ctx :].copy()
        if not (audio.any() or head.any() or tail.any()):
            return self._silent_mel.copy(), self._silent_energy.copy()
        x = int16_to_float(np.concatenate([tail, audio, head]))
        mel, energy = frame_features(x, self.sample_rate, self.fps, self.frames_per_chunk + 2)
        return mel[1:-1], energy[1:-1]

    def _peek(self, n: int) -> np.ndarray:
        """The next n queued samples without consuming them (zeros past the end of the queue)."""
        out = np.zeros(n, np.int16)
        got = 0
        for seg in self._segments:
            take = min(n - got, len(seg.audio) - seg.pos)
            out[got : got + take] = seg.audio[seg.pos : seg.pos + take]
            got += take
            if got >= n:
                break
        return out

    def _timing_targets(self) -> tuple[FloatArray, np.ndarray]:
        """Viseme targets from queued phoneme timings for this chunk's frames (lookahead applied)."""
        n, sr = self.frames_per_chunk, self.sample_rate
        targets = np.zeros((n, len(VISEMES)), np.float32)
        timed = np.zeros(n, bool)
        horizon = self.chunk_duration + self.lookahead_s
        frame_t = (np.arange(n) + 0.5) / self.fps
        offset = 0.0  # chunk-relative start time of the segment being looked at
        starts, ends, idx = [], [], []
        for k, seg in enumerate(self._segments):
            seg_off = offset - seg.pos / sr if k == 0 else offset
            seg_end = seg_off + len(seg.audio) / sr
            if seg.timed:
                i0 = int(np.searchsorted(seg.v_end_max, -seg_off, side="right"))
                i1 = int(np.searchsorted(seg.v_start, horizon - seg_off, side="left"))
                starts.append(seg.v_start[i0:i1] + seg_off)
                ends.append(seg.v_end[i0:i1] + seg_off)
                idx.append(seg.v_idx[i0:i1])
                inside = ((frame_t >= seg_off) & (frame_t < seg_end)) | (
                    (frame_t + self.lookahead_s >= seg_off) & (frame_t + self.lookahead_s < seg_end)
                )
                timed |= inside
            offset = seg_end
            if offset > horizon:
                break
        if timed.any():
            t0 = self.lookahead_s - 0.5 / self.fps  # one-frame windows centred on each pts + lookahead
            targets[:] = viseme_targets_arrays(
                np.concatenate(starts), np.concatenate(ends), np.concatenate(idx), t0, n, self.fps
            )
        return targets, timed

    def _apply_tag(self, tag: IntentTag, duration_s: float | None, frame: int, events: list[ControlEvent]) -> None:
        if tag.name in EMOTIONS:
            self._expr_target[:] = 0.0
            col = emotion_index(tag.name)
            if col is not None:
                self._expr_target[col] = tag.intensity
            self._since_emotion = 0.0
            start = self._index * self.chunk_duration + frame / self.fps
            self._emotion_until = None if duration_s is None else start + duration_s
            return
        events.append(ControlEvent(frame=frame, name=tag.name, intensity=tag.intensity))

    def _expressions(self, speaking: bool) -> FloatArray:
        self._since_emotion = 0.0 if speaking else self._since_emotion + self.chunk_duration
        if self._since_emotion > self.emotion_hold_s:
            self._expr_target[:] = 0.0  # relax to neutral a while after the agent stopped talking
            self._emotion_until = None
        n = self.frames_per_chunk
        expire_at = n  # first frame of this chunk at which a timed emotion is over
        if self._emotion_until is not None:
            t0 = self._index * self.chunk_duration
            expire_at = min(n, max(0, int(np.ceil((self._emotion_until - t0) * self.fps - 1e-9))))
        out = np.empty((n, len(EXPRESSIONS)), np.float32)
        expr = self._expr
        target = self._target(speaking)
        for i in range(n):  # first-order easing, per frame
            if i == expire_at:
                self._expr_target[:] = 0.0
                self._emotion_until = None
                target = self._target(speaking)
            expr = target + (expr - target) * (1.0 - self._ease)
            out[i] = expr
        self._expr = expr.astype(np.float32)
        return out

    def _target(self, speaking: bool) -> FloatArray:
        target = self._expr_target.copy()
        if self._state == AgentState.THINKING and not speaking:
            target[_THINKING] = max(float(target[_THINKING]), 0.4)
        return target
