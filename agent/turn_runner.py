"""One agent turn: LLM text (or given text) -> intent parser -> sentences -> TTS -> control builder.

The LLM streams into TTS sentence by sentence through a bounded queue, so the first sentence is
synthesized while the LLM is still writing. Intent tags are stripped from the spoken text and ride
with the sentence they were anchored in. Cancelling the runner's task (barge-in) cancels the LLM
stream and TTS at once; nothing of the turn is pushed afterwards.

An LLM that knows the reply it will give unless a tool answers (`expected_reply`: the knowledge
base's sentences said as written, `plugins/llm_openai`) lets the runner synthesize that reply's first
piece while the LLM still routes; the piece is used only if the reply's first piece is that text.

A runner made `held` may start before its turn exists (an answer begun from an early transcript,
see `agent.early_answer`): the LLM writes and TTS synthesizes, but nothing reaches the control
builder, no tool runs and no callback fires until `release(turn)`; its stage marks wait for the turn
number too. A held runner never released is cancelled by its owner (or gives up after `hold_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from agent.frames import AudioChunk, IntentTag, SpeechChunk, TextDelta, ToolCall
from agent.intents import IntentParser, echoes_vocabulary, tag_from_tool_call
from agent.interfaces import LLM, TTS, ChatMessage
from agent.metrics import SessionMetrics
from agent.speech_guard import SpeechGuard, guard_text
from agent.text import Sentence, SentenceSplitter
from agent.tools import ToolStatus
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock
from flowact.control import ControlBuilder

__all__ = ["TurnResult", "TurnRunner", "trim_lead"]

log = logging.getLogger("agent.turn")

_SentenceQueue = asyncio.Queue[tuple[Sentence, tuple[IntentTag, ...]] | None]
MAX_SPEECH_AHEAD_S = 30.0  # back-pressure: TTS waits when this much speech is queued unplayed
HOLD_S = 30.0  # a held runner not released within this long gives up (TimeoutError)
ACTIVE_LEVEL = 0.02 * 32768  # |sample| above this counts as audible speech (for the speech span metric)
ONSET_LEVEL = 100  # |sample| above this is where a word starts (-50 dBFS: soft onsets included)
LEAD_KEEP_S = 0.01  # of the silence a TTS engine puts before a turn's first word, only this much is kept


@dataclass(slots=True)
class TurnResult:
    turn: int
    spoken_text: str = ""
    sentences: int = 0
    speech_s: float = 0.0
    reply_text: str = ""  # the reply as the LLM wrote it (guarded, intent tags kept): for the history
    active_first: int = -1  # first/last sample above ACTIVE_LEVEL in the turn's concatenated speech
    active_last: int = -1
    samples: int = 0
    gap_samples: int = 0  # silence played inside the answer while its next speech was still being synthesized
    tags: list[IntentTag] = field(default_factory=list)


class TurnRunner:
    """Runs one turn to the point where all its speech is queued in the control builder."""

    def __init__(
        self,
        *,
        turn: int,
        builder: ControlBuilder,
        tts: TTS,
        clock: Clock,
        metrics: SessionMetrics,
        llm: LLM | None = None,
        on_speech: Callable[[], None] | None = None,
        on_tool: Callable[[ToolStatus], None] | None = None,
        first_clause: bool = True,
        first_clause_words: int = 5,
        held: bool = False,
        hold_s: float = HOLD_S,
    ) -> None:
        self.turn = turn
        self.builder = builder
        self.tts = tts
        self.llm = llm
        self.clock = clock
        self.metrics = metrics
        self.on_speech = on_speech  # called after each piece of speech is queued in the builder
        self.on_tool = on_tool  # progress of a tool the LLM runs (started / finished)
        self._echo_open = False  # the last piece was an echo of the tag vocabulary cut at a clause
        self._guard = SpeechGuard()  # tool syntax, JSON, code, markup never reach TTS
        self.result = TurnResult(turn)
        self._parser = IntentParser()
        self._splitter = SentenceSplitter(first_clause=first_clause, clause_max_words=first_clause_words)
        self._pending_tags: list[IntentTag] = []
        self._released = asyncio.Event()
        if not held:
            self._released.set()
        self.hold_s = hold_s
        self._early_marks: dict[str, float] = {}  # stage marks made while held
        self._engine_s = 0.0  # engine time while held
        self._first_clause = (first_clause, first_clause_words)
        # the expected reply's first piece, being synthesized ahead (text, task -> its speech and engine s)
        self._prefetch: tuple[str, asyncio.Task[tuple[list[SpeechChunk], float]]] | None = None

    # --- holding ---------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return not self._released.is_set()

    def release(self, turn: int) -> None:
        """The held work becomes `turn`'s: its marks are recorded and its speech may be queued."""
        if not self.held:
            return
        self.turn = turn
        for stage, t in self._early_marks.items():
            self.metrics.mark(turn, stage, t)
        self.metrics.turn(turn).engine_s += self._engine_s
        self._early_marks.clear()
        self._released.set()

    async def _wait_released(self) -> None:
        """Before anything reaches the builder or the session (speech, tags, tools)."""
        if self.held:
            async with asyncio.timeout(self.hold_s):
                await self._released.wait()

    def _mark(self, stage: str) -> None:
        if self.held:
            self._early_marks.setdefault(stage, self.clock.now())
        else:
            self.metrics.mark(self.turn, stage)

    def _add_engine_s(self, seconds: float) -> None:
        if self.held:
            self._engine_s += seconds
        else:
            self.metrics.turn(self.turn).engine_s += seconds

    async def run_llm(self, messages: Sequence[ChatMessage]) -> TurnResult:
        """Stream the LLM's reply into TTS sentence by sentence."""
        if self.llm is None:
            raise RuntimeError("run_llm needs an LLM")
        llm = self.llm
        expected = getattr(llm, "expected_reply", None)
        if callable(expected):
            self._start_prefetch(expected(messages))

        async def produce(queue: _SentenceQueue) -> None:
            self._mark("llm_request")
            stream = llm.chat(messages)
            try:
                t_call = self.clock.now()
                async for item in stream:
                    if isinstance(item, TextDelta):
                        self._mark("llm_first_token")
                        await self._feed(self._guard.feed(item.text), queue)
                    elif isinstance(item, ToolStatus):
                        await self._wait_released()  # the tool runs once the turn is this one's
                        if self.on_tool is not None:
                            self.on_tool(item)
                    elif isinstance(item, ToolCall):
                        await self._wait_released()
                        self._on_tool_call(item)
                await self._feed(self._guard.flush(), queue)
                self._add_engine_s(self.clock.now() - t_call)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]

        return await self._run(produce)

    async def run_text(self, text: str) -> TurnResult:
        """Speak given text (intent tags allowed) without the LLM."""

        async def produce(queue: _SentenceQueue) -> None:
            await self._feed(text, queue)

        return await self._run(produce)

    async def _run(self, produce: Callable[[_SentenceQueue], Awaitable[None]]) -> TurnResult:
        """Run a text producer and the TTS worker side by side over a bounded sentence queue."""
        queue: _SentenceQueue = asyncio.Queue(maxsize=4)
        tts_task = asyncio.create_task(self._tts_worker(queue), name=f"tts-turn-{self.turn}")
        try:
            await produce(queue)
            await self._finish(queue)
            await tts_task
        finally:
            while not tts_task.done():  # re-cancelled if a library swallowed the first cancellation
                tts_task.cancel()
                await asyncio.wait({tts_task}, timeout=1.0)
            if not tts_task.cancelled():
                tts_task.exception()  # retrieved: an error here already ended the turn through `await`
            await self._drop_prefetch()
        return self.result

    # --- the expected reply's first piece, synthesized ahead ------------------------------------
    def _start_prefetch(self, reply: str | None) -> None:
        """Synthesize the first piece of `reply` (as this runner would cut it) while the LLM routes."""
        if not reply:
            return
        clean, _ = IntentParser().feed(guard_text(reply))
        first_clause, words = self._first_clause
        splitter = SentenceSplitter(first_clause=first_clause, clause_max_words=words)
        pieces = splitter.feed(clean) + splitter.flush()
        if not pieces:
            return
        text = pieces[0].text

        async def synthesize() -> tuple[list[SpeechChunk], float]:
            t0 = self.clock.now()
            async with contextlib.aclosing(self._tts_stream(text)) as stream:
                return [speech async for speech in stream], self.clock.now() - t0

        self._prefetch = (text, asyncio.create_task(synthesize(), name=f"tts-ahead-turn-{self.turn}"))

    async def _take_prefetch(self, text: str) -> list[SpeechChunk] | None:
        """The speech synthesized ahead for `text` (None: another text, or it failed); the prefetch
        is used up either way."""
        if self._prefetch is None:
            return None
        ahead, task = self._prefetch
        if ahead != text:
            await self._drop_prefetch()
            return None
        self._prefetch = None
        try:
            speech, engine_s = await task
        except Exception as e:  # noqa: BLE001 - synthesized again below, where an error ends the turn
            log.warning("speech synthesized ahead failed (%s): synthesizing it again", e)
            return None
        self._add_engine_s(engine_s)
        return speech

    async def _drop_prefetch(self) -> None:
        if self._prefetch is None:
            return
        _, task = self._prefetch
        self._prefetch = None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _speech(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        """The speech of one piece: synthesized ahead if it was the expected one, else now."""
        ahead = await self._take_prefetch(text)
        if ahead is not None:
            for speech in ahead:
                yield speech
            return
        t_call = self.clock.now()
        async with contextlib.aclosing(self._tts_stream(text)) as stream:
            async for speech in stream:
                yield speech
        self._add_engine_s(self.clock.now() - t_call)

    async def _tts_stream(self, text: str) -> AsyncGenerator[SpeechChunk, None]:
        """The engine's speech for `text`; its stream is closed however the caller stops."""
        stream = self.tts.synthesize(text)
        try:
            async for speech in stream:
                yield speech
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    # --- internals -----------------------------------------------------------------------------
    def _on_tool_call(self, call: ToolCall) -> None:
        if call.name != "set_expression":
            return  # user tools are executed inside the LLM plugin
        try:
            tag = tag_from_tool_call(call)
        except ValueError as e:
            log.warning("ignoring set_expression call: %s", e)
            return
        self.builder.push_tag(tag)
        self.result.tags.append(tag)

    def _accept(self, clean: str, tags: list[IntentTag], raw: str = "") -> None:
        """Record what the intent parser released: tags wait for their sentence, text is spoken."""
        self.result.reply_text += raw
        self._pending_tags.extend(tags)
        self.result.tags.extend(tags)
        if clean:
            self.result.spoken_text += clean

    async def _feed(self, delta: str, queue: _SentenceQueue) -> None:
        clean, tags = self._parser.feed(delta)
        self._accept(clean, tags, delta)
        for sentence in self._splitter.feed(clean):
            if self._echo(sentence):
                continue
            self._mark("first_piece")
            await queue.put((sentence, self._take_tags(sentence)))

    async def _finish(self, queue: _SentenceQueue) -> None:
        clean, tags = self._parser.flush()
        self._accept(clean, tags)
        sentences = [s for s in self._splitter.feed(clean) + self._splitter.flush() if not self._echo(s)]
        for i, sentence in enumerate(sentences):
            self._mark("first_piece")
            last = i == len(sentences) - 1
            await queue.put((sentence, self._take_tags(sentence, take_all=last)))
        if self._pending_tags:  # tags after the last sentence (or a reply of tags only)
            await self._wait_released()
            for tag in self._pending_tags:
                self.builder.push_tag(tag)
            self._pending_tags.clear()
        await queue.put(None)

    def _echo(self, sentence: Sentence) -> bool:
        """A sentence that only restates the tag vocabulary is not spoken, nor kept in the reply (its
        tags stay pending for the next sentence)."""
        echo = echoes_vocabulary(sentence.text, continued=self._echo_open)
        self._echo_open = echo and not sentence.text.rstrip().endswith((".", "!", "?"))
        if not echo:
            return False
        log.warning("not speaking a sentence that restates the tag vocabulary: %r", sentence.text[:80])
        self.result.spoken_text = self.result.spoken_text.replace(sentence.text, "", 1)
        self.result.reply_text = self.result.reply_text.replace(sentence.text, "", 1)
        return True

    def _take_tags(self, sentence: Sentence, *, take_all: bool = False) -> tuple[IntentTag, ...]:
        end = sentence.offset + len(sentence.text)
        mine = [t for t in self._pending_tags if take_all or t.char_offset <= end]
        self._pending_tags = [t for t in self._pending_tags if t not in mine]
        return tuple(
            replace(t, char_offset=min(max(0, t.char_offset - sentence.offset), len(sentence.text))) for t in mine
        )

    async def _tts_worker(self, queue: _SentenceQueue) -> None:
        while True:
            entry = await queue.get()
            if entry is None:
                return
            sentence, tags = entry
            first = True
            stream = self._speech(sentence.text)
            try:
                async for speech in stream:
                    self._mark("tts_first_audio")
                    await self._wait_released()
                    while self.builder.speech_pending_s > MAX_SPEECH_AHEAD_S:
                        await self.clock.sleep(0.1)
                    speech = replace(speech, turn=self.turn, tags=tags if first else (), text_offset=sentence.offset)
                    if self.result.samples == 0:
                        speech = trim_lead(speech)  # the turn's first word plays without the engine's lead-in
                    first = False
                    self._push(speech)
            finally:
                await stream.aclose()
            self.result.sentences += 1

    def _push(self, speech: SpeechChunk) -> None:
        rate = self.builder.sample_rate
        if speech.audio.sample_rate != rate:  # engines should already deliver the session rate
            pcm = resample(int16_to_float(speech.audio.samples), speech.audio.sample_rate, rate)
            speech = replace(speech, audio=AudioChunk(float_to_int16(pcm), rate, speech.audio.pts))
        if self.result.samples and self.builder.speech_pending_s == 0.0:  # the answer so far has played out
            self.result.gap_samples += self.builder.dry_samples
        self.builder.push_speech(speech)
        self.result.speech_s += speech.audio.duration
        loud = np.flatnonzero(np.abs(speech.audio.samples.astype(np.int32)) > ACTIVE_LEVEL)
        if len(loud):
            if self.result.active_first < 0:
                self.result.active_first = self.result.samples + int(loud[0])
            self.result.active_last = self.result.samples + int(loud[-1])
        self.result.samples += len(speech.audio.samples)
        if self.on_speech is not None:
            self.on_speech()


def trim_lead(speech: SpeechChunk, keep_s: float = LEAD_KEEP_S) -> SpeechChunk:
    """`speech` without the near-silence before its first audible sample (but `keep_s`); phoneme and
    word timings move with the audio (what falls before the new start is cut off)."""
    pcm = speech.audio.samples
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_LEVEL)
    cut = int(loud[0]) - int(keep_s * speech.audio.sample_rate) if len(loud) else 0
    if cut <= 0:
        return speech
    dt = cut / speech.audio.sample_rate
    audio = replace(speech.audio, samples=pcm[cut:])
    phonemes = tuple(
        replace(p, start=max(0.0, p.start - dt), duration=p.duration - max(0.0, dt - p.start))
        for p in speech.phonemes if p.start + p.duration > dt
    )
    words = tuple(
        replace(w, start=max(0.0, w.start - dt), duration=w.duration - max(0.0, dt - w.start))
        for w in speech.words if w.start + w.duration > dt
    )
    return replace(speech, audio=audio, phonemes=phonemes, words=words)
