"""AppServices: what the session calls per turn (KB passages, tutor line, tool/handoff events, record)."""

from __future__ import annotations

from pathlib import Path

from agent.app_services import AppServices
from agent.interfaces import ChatMessage
from agent.kb import KnowledgeConfig, quote_of
from agent.record import RecordConfig, read_transcript
from agent.tools import ToolStatus
from agent.tutor import TutorConfig

ROOT = Path(__file__).resolve().parents[2]


async def test_support_services_kb_record_and_handoff(tmp_path: Path) -> None:
    s = AppServices(knowledge=KnowledgeConfig(dir=str(ROOT / "examples/customer_support/faq"), db=str(tmp_path / "kb")),
                    record=RecordConfig(db=str(tmp_path / "rec.sqlite")), name="support")
    await s.start()
    assert s.greeting("[smile] Hello") == "[smile] Hello" and len(s.observers) == 1
    msgs, line = await s.prepare([ChatMessage("system", "Be Ava."), ChatMessage("user", "Can I return shoes?")],
                                 "Can I return shoes?")
    assert line is None and [m.role for m in msgs] == ["system", "system", "user"] and "30 days" in msgs[1].content
    for obs in s.observers:
        obs.on_event("transcript", {"role": "user", "text": "A person, please.", "final": True})
    assert s.on_tool_status(ToolStatus("handoff", "{}", "c", phase="started"), 1) == []
    events = s.on_tool_status(ToolStatus("handoff", '{"reason": "wants a person"}', "c", phase="finished",
                                         handoff=True, duration_s=0.01), 1)
    assert [k for k, _ in events] == ["tool", "handoff"]
    handoff = events[1][1]
    assert handoff["reason"] == "wants a person" and handoff["transcript"][0]["text"] == "A person, please."
    for kind, payload in events:
        for obs in s.observers:
            obs.on_event(kind, payload)
    await s.aclose()
    assert s.recorder is not None
    data = read_transcript(tmp_path / "rec.sqlite", s.recorder.session_id)
    assert data["tools"][0]["name"] == "handoff" and [e["kind"] for e in data["events"]] == ["handoff"]


async def test_tutor_services_speak_the_graded_line_and_resume(tmp_path: Path) -> None:
    cfg = TutorConfig(plan=str(ROOT / "examples/tutor/lessons/english_basics.yaml"), db=str(tmp_path / "t.sqlite"),
                      student="ana")
    s = AppServices(tutor=cfg)
    await s.start()
    assert "Nice to meet you" in s.greeting("[happy] Hi!")
    _, line = await s.prepare([ChatMessage("user", "nice to meet you too")], "nice to meet you too")
    assert line is not None and line.startswith("[happy] [nod]")
    await s.aclose()
    s2 = AppServices(tutor=cfg.model_copy(update={"speak": "llm"}))
    await s2.start()
    assert s2.greeting("x").startswith("[smile] Welcome back!")
    msgs, line = await s2.prepare([ChatMessage("system", "Tutor."), ChatMessage("user", "I am fine, thanks")],
                                  "I am fine, thanks")
    assert line is None and msgs[1].role == "system" and "Well done" in msgs[1].content
    await s2.aclose()


async def test_a_question_the_knowledge_base_does_not_answer_gets_the_honest_line(tmp_path: Path) -> None:
    """A small model invented answers to what the FAQ never mentions ("do you sell laptops?": "Yes"):
    such a question gets `unknown_line` as the quote; thanks, goodbyes and greetings still go to the model."""
    faq = KnowledgeConfig(dir=str(ROOT / "examples/customer_support/faq"), db=str(tmp_path / "kb"))
    system = ChatMessage("system", "Be Ava.")

    async def quote_for(cfg: KnowledgeConfig, text: str) -> tuple[str | None, list[ChatMessage]]:
        s = AppServices(knowledge=cfg)
        await s.start()
        try:
            msgs, _ = await s.prepare([system, ChatMessage("user", text)], text)
        finally:
            await s.aclose()
        return quote_of(msgs), msgs

    for question in ("Do you sell laptops?", "Who is the CEO of your company?", "Do you offer student discounts?",
                     "I'd like to buy a laptop."):
        quote, _ = await quote_for(faq, question)
        assert quote == faq.unknown_line, (question, quote)
    for chat in ("Thank you, that's all.", "Great, bye!", "Hi there!", "How are you?", "What's your name?",
                 "Are you a robot?"):
        assert (await quote_for(faq, chat))[0] is None, chat
    assert "30 days" in ((await quote_for(faq, "Can I return shoes?"))[0] or "")
    quote, msgs = await quote_for(faq.model_copy(update={"unknown_line": None}), "Do you sell laptops?")
    assert quote is None and [m.role for m in msgs] == ["system", "user"]  # null: the model answers
    quote, msgs = await quote_for(faq.model_copy(update={"answer": "passages"}), "Do you offer student discounts?")
    assert quote is None and "never guess" in msgs[1].content  # a capable model words it, told not to guess
