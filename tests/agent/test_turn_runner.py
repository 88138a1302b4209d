"""The turn runner's speech handling that needs no engine."""

from __future__ import annotations

import numpy as np

from agent.frames import AudioChunk, PhonemeTiming, SpeechChunk, WordTiming
from agent.metrics import SessionMetrics
from agent.turn_runner import TurnRunner, trim_lead
from flowact.clock import FakeClock
from flowact.control import ControlBuilder


def test_trim_lead_cuts_the_engine_lead_in_and_moves_the_timings() -> None:
    rate = 1000
    pcm = np.concatenate([np.zeros(60, np.int16), np.full(100, 5000, np.int16)])
    speech = SpeechChunk(
        AudioChunk(pcm, rate), "hi",
        phonemes=(PhonemeTiming("_", 0.0, 0.055), PhonemeTiming("h", 0.055, 0.05), PhonemeTiming("i", 0.105, 0.055)),
        words=(WordTiming("hi", 0.045, 0.115),),
    )
    out = trim_lead(speech)
    assert len(out.audio.samples) == 110 and int(out.audio.samples[10]) == 5000  # 10 ms kept before the word
    assert [(p.phoneme, round(p.start, 3), round(p.duration, 3)) for p in out.phonemes] == [
        ("_", 0.0, 0.005), ("h", 0.005, 0.05), ("i", 0.055, 0.055)]
    assert [(w.start, round(w.duration, 3)) for w in out.words] == [(0.0, 0.11)]
    assert trim_lead(out) == out  # nothing more to cut



def test_silence_played_inside_an_answer_is_counted_as_its_gap() -> None:
    """Synthesis that falls behind the timeline leaves silence inside the answer: the turn's
    `gap_samples` (-> `speech_gaps_s`) is that silence, so the answer's span in the recording is its
    speech span plus its gaps."""
    rate = 24000
    builder = ControlBuilder(fps=25, sample_rate=rate)
    n = builder.samples_per_chunk
    clock = FakeClock()
    runner = TurnRunner(turn=1, builder=builder, tts=None, clock=clock, metrics=SessionMetrics(clock, fps=25))  # type: ignore[arg-type]

    def piece(samples: int) -> SpeechChunk:
        return SpeechChunk(AudioChunk(np.full(samples, 5000, np.int16), rate), "word")

    builder.next_chunk()  # idle before the answer: not part of it
    runner._push(piece(n))
    builder.next_chunk()
    runner._push(piece(n // 2))  # queued before the first ran out: no gap
    assert runner.result.gap_samples == 0
    for _ in range(3):
        builder.next_chunk()  # the half chunk, then silence: n // 2 + 2 n samples
    runner._push(piece(n))
    assert runner.result.gap_samples == n // 2 + 2 * n


async def test_a_sentence_restating_the_tag_vocabulary_is_not_spoken() -> None:
    """The shipped 0.5B model sometimes answers with a tag's description copied from its prompt
    ("[shake] Head shake (no, disagreement)."): that is not said, nor kept as the reply, even when the
    first-clause split cuts it in two; its tag rides with the next sentence that is spoken."""
    from agent.interfaces import ChatMessage
    from flowact.clock import RealClock
    from plugins.llm_scripted import ScriptedLLM, ScriptedLLMConfig
    from plugins.tts_espeak import EspeakTTS, EspeakTTSConfig

    reply = "[shake] Head shake (no, disagreement). [concerned] Sorry, the address cannot be changed now."
    builder = ControlBuilder(fps=25, sample_rate=24000)
    clock = RealClock()
    llm = ScriptedLLM(ScriptedLLMConfig(replies=[reply], first_token_s=0.0, delta_s=0.0), clock=clock)
    spoken: list[str] = []
    tts = EspeakTTS(EspeakTTSConfig(), sample_rate=24000)
    synthesize = tts.synthesize

    def recording(text: str):  # type: ignore[no-untyped-def]
        spoken.append(text)
        return synthesize(text)

    tts.synthesize = recording  # type: ignore[method-assign]
    runner = TurnRunner(turn=1, builder=builder, tts=tts, clock=clock, metrics=SessionMetrics(clock, fps=25), llm=llm)
    result = await runner.run_llm([ChatMessage("user", "Can I change the delivery address?")])
    assert spoken and not any("shake" in s.lower() or "disagreement" in s.lower() for s in spoken), spoken
    assert "Sorry, the address cannot be changed now." in " ".join(spoken)
    assert "Head shake" not in result.spoken_text and result.spoken_text.strip().startswith("Sorry")
    assert "Head shake" not in result.reply_text and "Sorry, the address" in result.reply_text
    assert [t.name for t in result.tags] == ["shake", "concerned"] and result.sentences == len(spoken)


async def test_the_expected_reply_is_synthesized_while_the_llm_routes() -> None:
    """An LLM that knows its reply unless a tool answers (`expected_reply`: the knowledge base's
    sentences said as written) has its first piece synthesized while it still routes: that piece is
    not synthesized again, and a different reply (a tool answered) never speaks the piece made ahead."""
    from agent.interfaces import ChatMessage
    from flowact.clock import RealClock
    from plugins.llm_scripted import ScriptedLLM, ScriptedLLMConfig
    from plugins.tts_espeak import EspeakTTS, EspeakTTSConfig

    quote = "[concerned:0.3] Refunds reach your card in five to seven business days, after the item arrives."

    class Routing(ScriptedLLM):
        expected = quote

        def expected_reply(self, messages: object) -> str:
            return self.expected

    async def run(reply: str) -> tuple[list[tuple[str, float]], list[str], float, TurnRunner]:
        clock = RealClock()
        builder = ControlBuilder(fps=25, sample_rate=24000)
        llm = Routing(ScriptedLLMConfig(replies=[reply], first_token_s=0.4, delta_s=0.0), clock=clock)
        tts = EspeakTTS(EspeakTTSConfig(), sample_rate=24000)
        synthesize, push = tts.synthesize, builder.push_speech
        calls: list[tuple[str, float]] = []
        pushed: list[str] = []

        def recording(text: str):  # type: ignore[no-untyped-def]
            calls.append((text, clock.now()))
            return synthesize(text)

        def pushing(speech: SpeechChunk) -> None:
            pushed.append(speech.text)
            push(speech)

        tts.synthesize = recording  # type: ignore[method-assign]
        builder.push_speech = pushing  # type: ignore[method-assign]
        metrics = SessionMetrics(clock, fps=25)
        runner = TurnRunner(turn=1, builder=builder, tts=tts, clock=clock, metrics=metrics, llm=llm)
        t0 = clock.now()
        await runner.run_llm([ChatMessage("user", "How long does a refund take?")])
        first_token = metrics.turn(1).marks["llm_first_token"] - t0
        return [(text, t - t0) for text, t in calls], pushed, first_token, runner

    calls, pushed, first_token, runner = await run(quote)
    texts = [text for text, _ in calls]
    assert len(texts) == len(set(texts)) >= 2, texts  # each piece synthesized once, the first one ahead
    assert calls[0][1] < 0.1 < first_token, (calls, first_token)  # begun before the LLM's first text
    assert pushed == texts and runner.result.spoken_text.strip().startswith("Refunds reach")
    calls, pushed, _, runner = await run("Order 1234 is shipped and arrives tomorrow.")  # a tool answered
    assert calls[0][0].startswith("Refunds") and not any(p.startswith("Refunds") for p in pushed), (calls, pushed)
    assert pushed and pushed[0].startswith("Order 1234")
