"""Tool rounds with the shipped local model on a real llama.cpp server: the JSON-schema router picks the
tool, the tool runs (callable), its result is answered; slow tools speak a filler, broken ones an
apology, the hand-off ends the bot's part; and native tool calls through llama.cpp's
`chatml-function-calling` (which leaks `functions.x:` as text) never reach the speech."""

from __future__ import annotations

import re

from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage
from agent.kb import Grounding, KnowledgeConfig, build_messages
from agent.tools import ToolConfig, ToolStatus
from tests.fixtures.llm_server import LlmServer, llm_server, make_llm

__all__ = ["llm_server"]

SLOW = 180.0
M = "tests.agent.tool_funcs"
SYSTEM = ChatMessage("system", "You are Ava, a customer-support agent for an online shop. Reply in one or "
                               "two short spoken sentences.")
LOOKUP = ToolConfig(name="lookup_order", callable=f"{M}:lookup_order", speak="result",
                    say="Order {order_id} is {status}.")
HANDOFF = ToolConfig(name="handoff", builtin="handoff")
LEAK = re.compile(r"functions\.|[{}<>`_]|\"\w+\":")


async def run(llm_kwargs: dict[str, object], server: LlmServer, user: str,
              knowledge: Grounding | None = None, history: tuple[ChatMessage, ...] = ()
              ) -> tuple[str, list[ToolStatus]]:
    llm = make_llm(server, first_token_timeout_s=SLOW, timeout_s=SLOW, tool_mode="router", **llm_kwargs)
    text, statuses = "", []
    messages = [SYSTEM, *history, ChatMessage("user", user)]
    try:
        async for item in llm.chat(build_messages(messages, knowledge) if knowledge else messages):
            if isinstance(item, TextDelta):
                text += item.text
            elif isinstance(item, ToolStatus):
                statuses.append(item)
    finally:
        await llm.aclose()
    assert not LEAK.search(text), text
    return text, statuses


async def test_router_calls_the_tool_and_speaks_its_result(llm_server: LlmServer) -> None:
    text, st = await run({"tools": [LOOKUP, HANDOFF]}, llm_server, "Where is my order 1234?")
    assert [(s.name, s.phase) for s in st] == [("lookup_order", "started"), ("lookup_order", "finished")]
    assert st[1].ok and st[1].duration_s >= 0 and '"1234"' in st[1].arguments
    assert text.strip() == "Order 1234 is shipped on Monday, arrives tomorrow."


async def test_router_answer_worded_by_the_llm_from_the_result(llm_server: LlmServer) -> None:
    tool = ToolConfig(name="lookup_order", callable=f"{M}:lookup_order")  # speak: llm
    text, st = await run({"tools": [tool], "max_tokens": 40}, llm_server, "where's my order? 5678.")
    assert [s.phase for s in st] == ["started", "finished"] and "being packed" in st[1].result
    assert re.search(r"[a-z]{3}", text), text  # a spoken answer, leak-free (checked in run)


async def test_router_picks_no_tool_for_small_talk_and_answers(llm_server: LlmServer) -> None:
    text, st = await run({"tools": [LOOKUP, HANDOFF], "max_tokens": 30}, llm_server, "Hello, how are you today?")
    assert st == [] and re.search(r"[a-z]{3}", text), text


REFUND = Grounding((), ("Refunds reach your card 5 to 7 business days after the warehouse receives the item.",))


async def test_knowledge_sentences_are_spoken_as_written_when_no_tool_runs(llm_server: LlmServer) -> None:
    quoting = {"tools": [LOOKUP, HANDOFF], "quote_knowledge": "always"}
    text, st = await run(quoting, llm_server, "How long does a refund take?", REFUND)
    assert st == [] and text.strip() == REFUND.sentences[0]  # the fact as the FAQ states it, no model wording
    text, st = await run(quoting, llm_server, "Where is my order 1234?", REFUND)  # a tool question wins
    assert [s.name for s in st] == ["lookup_order", "lookup_order"] and "1234" in text and "Refund" not in text


async def test_an_unanswered_question_is_said_honestly_and_a_yes_hands_off(llm_server: LlmServer) -> None:
    """The knowledge base's `unknown_line` (agent.kb: the FAQ does not answer it) is said as written, not a
    small model's invention; the user's "Yes, please." to its offer of a colleague runs the hand-off,
    though the words name no person."""
    line = KnowledgeConfig(dir=".").unknown_line
    assert line is not None and "colleague?" in line
    quoting = {"tools": [LOOKUP, HANDOFF], "quote_knowledge": "always"}
    text, st = await run(quoting, llm_server, "Do you sell laptops?", Grounding((), (line,)))
    assert st == [] and text.strip() == line
    offered = (ChatMessage("user", "Do you sell laptops?"), ChatMessage("assistant", line))
    text, st = await run(quoting, llm_server, "Yes, please.", history=offered)
    assert [s.name for s in st] == ["handoff", "handoff"] and st[-1].handoff and "colleague" in text
    text, st = await run(quoting, llm_server, "No, thanks.", history=offered)
    assert st == [] and re.search(r"[a-z]{3}", text)  # declined: no hand-off


async def test_slow_tool_speaks_a_filler_before_its_result(llm_server: LlmServer) -> None:
    slow = ToolConfig(name="lookup_order", description="Look up the status of an order by its number.",
                      callable=f"{M}:very_slow_lookup", speak="result", timeout_s=10)
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, timeout_s=SLOW, tool_mode="router", tools=[slow],
                   filler_after_s=0.2, tool_filler="[thinking] One moment, please.")
    items = [i async for i in llm.chat([SYSTEM, ChatMessage("user", "Where is my order 1234?")])]
    await llm.aclose()
    kinds = [("filler" if isinstance(i, TextDelta) and "moment" in i.text else
              i.phase if isinstance(i, ToolStatus) else "text") for i in items]
    assert kinds[:3] == ["started", "filler", "finished"], kinds
    assert "".join(i.text for i in items[3:] if isinstance(i, TextDelta)).strip() == "Order 1234: shipped on Monday, " \
        "arrives tomorrow."


async def test_broken_tool_is_a_spoken_apology_not_a_dead_turn(llm_server: LlmServer) -> None:
    broken = ToolConfig(name="lookup_order", description="Look up the status of an order by its number.",
                        callable=f"{M}:broken", apology="[concerned] Sorry, our order system is down right now.")
    text, st = await run({"tools": [broken]}, llm_server, "Where is my order 1234?")
    assert st[-1].phase == "finished" and not st[-1].ok and "database down" in st[-1].error
    assert text.strip() == "[concerned] Sorry, our order system is down right now."


async def test_handoff_ends_the_bots_part(llm_server: LlmServer) -> None:
    text, st = await run({"tools": [LOOKUP, HANDOFF]}, llm_server, "I want to talk to a human agent, please.")
    assert st[-1].name == "handoff" and st[-1].handoff and st[-1].phase == "finished"
    assert "colleague" in text


async def test_native_tool_calls_on_llama_cpp_never_leak(llm_server: LlmServer) -> None:
    """chatml-function-calling's auto mode answers `functions.lookup_order:` as message text: the guard
    withholds it and the plugin answers again without tools; the turn is never silent or leaky."""
    tool = ToolConfig(name="lookup_order", description="Look up the status of an order by its number.",
                      callable=f"{M}:lookup_order")
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, timeout_s=SLOW, tool_mode="native", tools=[tool],
                   max_tokens=40)
    out = [i async for i in llm.chat([SYSTEM, ChatMessage("user", "Where is my order 1234?")])]
    await llm.aclose()
    text = "".join(i.text for i in out if isinstance(i, TextDelta))
    assert text.strip() and not LEAK.search(text), text
    assert all(isinstance(i, ToolStatus) for i in out if isinstance(i, ToolCall))
