"""The leak guard between LLM text and TTS, on the malformed outputs small models produce, fed whole,
in small deltas and character by character (a guard that only works on whole strings is no guard)."""

from __future__ import annotations

import random

import pytest

from agent.intents import IntentParser
from agent.speech_guard import SpeechGuard, guard_text


def split_feed(text: str, sizes: list[int]) -> str:
    g = SpeechGuard()
    out, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        out.append(g.feed(text[i:i + n]))
        i, k = i + n, k + 1
    out.append(g.flush())
    return "".join(out)


def all_ways(text: str) -> set[str]:
    """The guarded text fed whole, one char at a time, and in random chunkings (normalized spacing)."""
    rng = random.Random(7)
    results = {guard_text(text), split_feed(text, [1]), split_feed(text, [2, 3]), split_feed(text, [5, 1, 9])}
    results |= {split_feed(text, [rng.randint(1, 12) for _ in range(8)]) for _ in range(5)}
    return {" ".join(r.split()) for r in results}


LEAKS = [
    # (model output, what must be spoken)
    ("functions.lookup_order:", ""),
    ("functions.lookup_order:\n{\"order_id\": \"1234\"}", ""),
    ('message:\nOrder 1234 shipped on Monday.', "Order 1234 shipped on Monday."),
    ('{"name": "lookup_order", "arguments": {"order_id": "1234"}}', ""),
    ('Let me check. {"name": "lookup_order", "arguments": {"order_id": "12}34"}} It ships today.',
     "Let me check. It ships today."),
    ("<tool_call>\n{\"name\": \"lookup_order\", \"arguments\": {\"order_id\": \"5678\"}}\n</tool_call>", ""),
    ("Sure! <tool_call>{\"name\": \"x\"}</tool_call> Done.", "Sure! Done."),
    ("```json\n{\"order_id\": \"1234\"}\n```\nYour order ships today.", "Your order ships today."),
    ("```python\nprint(lookup_order('1234'))\n```", ""),
    ("Use `lookup_order(1234)` to check.", "Use to check."),
    ("lookup_order(order_id=\"1234\") Your order is on its way.", "Your order is on its way."),
    ('"order_id": "1234"}\nIt arrives tomorrow.', "It arrives tomorrow."),
    ("[{\"tool\": \"none\"}] Hello!", "Hello!"),
    ("<|im_start|>assistant\nHello there.<|im_end|>", "Hello there."),
    ("**Order 1234** has *shipped*. ## Details", "Order 1234 has shipped. Details"),
    ("The order &#39;1234&#39; is <b>late</b> &lt;br&gt;.", "The order '1234' is late ."),
    ("functions.handoff: {\"reason\": \"human\"}", ""),
    ("[functions.lookup_order: {\"order_id\": \"1234\"}] Checking.", "Checking."),
    ('{"order_id": "12', ""),  # partial JSON at the end of the stream
    # a speaker label copied from a dialogue-style example in the prompt (the reply's first word only)
    ("Ava: [concerned] Order 1234 left the depot.", "[concerned] Order 1234 left the depot."),
    ("[neutral] Ava: Sure, I can help.", "[neutral] Sure, I can help."),
    ("Your order: 1234 ships today.", "Your order: 1234 ships today."),
]


@pytest.mark.parametrize(("raw", "spoken"), LEAKS)
def test_tool_syntax_json_code_and_markup_are_never_spoken(raw: str, spoken: str) -> None:
    got = all_ways(raw)
    assert got == {spoken}, (raw, got)
    for text in got:
        assert not any(ch in text for ch in "{}<>`_\"") and "functions" not in text


@pytest.mark.parametrize("tagged", [
    "[smile] Sure, I can help with that.",
    "[happy:0.5] Great news! [nod] Order 1234 shipped.",
    "[emotion:concerned] Sorry about that. [raise_brows] Anything else?",
    "[gesture:nod:0.8] Yes.",
])
def test_intent_tags_pass_intact_for_the_intent_parser(tagged: str) -> None:
    assert all_ways(tagged) == {tagged}
    clean, tags = IntentParser().feed(split_feed(tagged, [1]))
    assert tags and "[" not in clean


def test_plain_speech_passes_unchanged_in_any_split() -> None:
    text = "Your order 1234 shipped on Monday, and it arrives tomorrow before noon. Anything else? (Just ask.)"
    assert all_ways(text) == {text}


def test_an_unclosed_bracket_is_guarded_as_text_not_dropped_whole() -> None:
    text = "[ this is a very long aside that never closes and goes on and on. Then the answer: yes."
    (got,) = all_ways(text)
    assert got.startswith("this is a very long aside") and got.endswith("Then the answer: yes.")


def test_guard_reports_what_it_withheld() -> None:
    g = SpeechGuard()
    out = g.feed('functions.lookup_order: {"order_id": "1234"}') + g.flush()
    assert out.strip() == "" and g.dropped > 30


def test_guard_is_linear_and_bounded_on_hostile_input() -> None:
    g = SpeechGuard()
    out = g.feed("{" * 10000 + "x" * 10000) + g.feed("[" * 5000) + g.flush()
    assert out == "" and len(g._buf) == 0
    long_word = "a" * 500 + " then words."
    assert guard_text(long_word).strip() == "then words."


def test_guarding_twice_changes_nothing() -> None:
    """The plugin guards its output and the turn runner may guard every LLM's text again."""
    for raw, _ in LEAKS:
        once = guard_text(raw)
        assert guard_text(once) == once, raw
