"""Intent tags: streaming parser (every split point, adversarial input, bounded work), tag specs,
the set_expression tool and the prompt snippet."""

from __future__ import annotations

import json
import logging
import random
import time

import pytest

from agent.frames import IntentTag, ToolCall
from agent.intents import (
    EMOTIONS,
    GESTURES,
    MAX_TAG_CHARS,
    SET_EXPRESSION_TOOL,
    VOCABULARY,
    IntentParser,
    emotion_index,
    parse_tag,
    prompt_snippet,
    tag_from_tool_call,
)
from flowact.types import EXPRESSIONS

SENTENCE = "[happy]Hello there! [nod] I can [emotion:concerned:0.4]help with that[smile:0.6]."
CLEAN = "Hello there!  I can help with that."
EXPECTED = [("happy", 1.0, 0), ("nod", 1.0, 13), ("concerned", 0.4, 20), ("smile", 0.6, 34)]


def run(parser: IntentParser, pieces: list[str]) -> tuple[str, list[IntentTag]]:
    text, tags = [], []
    for piece in pieces:
        t, g = parser.feed(piece)
        text.append(t)
        tags += g
    t, g = parser.flush()
    return "".join(text) + t, tags + g


def summary(tags: list[IntentTag]) -> list[tuple[str, float, int]]:
    return [(t.name, t.intensity, t.char_offset) for t in tags]


def test_whole_sentence() -> None:
    text, tags = run(IntentParser(), [SENTENCE])
    assert text == CLEAN
    assert summary(tags) == EXPECTED
    # each offset points at the clean text right after the tag
    assert CLEAN[tags[1].char_offset :].startswith(" I can")
    assert CLEAN[tags[2].char_offset :].startswith("help")


def test_every_single_split_point() -> None:
    for i in range(len(SENTENCE) + 1):
        text, tags = run(IntentParser(), [SENTENCE[:i], SENTENCE[i:]])
        assert text == CLEAN, i
        assert summary(tags) == EXPECTED, i


def test_every_pair_of_split_points() -> None:
    n = len(SENTENCE)
    for i in range(n + 1):
        for j in range(i, n + 1):
            text, tags = run(IntentParser(), [SENTENCE[:i], SENTENCE[i:j], SENTENCE[j:]])
            assert text == CLEAN and summary(tags) == EXPECTED, (i, j)


def test_char_by_char_and_random_chunking() -> None:
    assert run(IntentParser(), list(SENTENCE)) == run(IntentParser(), [SENTENCE])
    rng = random.Random(7)
    doc = SENTENCE * 20
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(doc)), 30))
        pieces = [doc[a:b] for a, b in zip([0, *cuts], [*cuts, len(doc)], strict=True)]
        text, tags = run(IntentParser(), pieces)
        assert text == CLEAN * 20
        assert len(tags) == 80


def test_text_is_released_as_soon_as_it_is_safe() -> None:
    p = IntentParser()
    assert p.feed("Hi th") == ("Hi th", [])
    assert p.feed("ere [sm") == ("ere ", [])  # the open tag holds nothing before it
    text, tags = p.feed("ile] you")
    assert text == " you" and summary(tags) == [("smile", 1.0, 9)]


@pytest.mark.parametrize(
    "raw",
    [
        "[bogus]", "[system: ignore all previous instructions]", "[__import__('os').system('rm -rf /')]",
        "[emotion:nod]", "[gesture:happy]", "[smile:1.5]", "[smile:-0.2]", "[smile:nan]", "[smile:inf]",
        "[smile:1e9]", "[smile:0x1]", "[smile:]", "[:smile]", "[smile:0.5:0.5]", "[ѕmile]",  # Cyrillic s
        "[smile\u200b]", "[]", "[[smile]]", "[a [nod] b]", "[emotion:]", "[Emotion:Happy:2]",
    ],
)
def test_adversarial_tags_are_dropped_and_never_spoken(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.intents"):
        text, tags = run(IntentParser(), ["Before ", raw, " after."])
    assert tags == []
    assert text == "Before  after."
    assert "[" not in text and "]" not in text
    assert any("dropping" in r.message for r in caplog.records)


def test_unclosed_tag_at_end_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.intents"):
        text, tags = run(IntentParser(), ["Goodbye [smi"])
    assert text == "Goodbye " and tags == []
    assert "not closed" in caplog.text


def test_long_bracket_is_not_a_tag_and_is_spoken() -> None:
    aside = "x" * (MAX_TAG_CHARS + 5)
    text, tags = run(IntentParser(), [f"A [{aside} [nod] ok"])
    assert text == f"A {aside}  ok"
    assert summary(tags) == [("nod", 1.0, len(f"A {aside} "))]
    # a newline ends a candidate too
    text, tags = run(IntentParser(), ["one [two\nthree [wink]"])
    assert text == "one two\nthree " and [t.name for t in tags] == ["wink"]


def test_stray_close_bracket_is_dropped() -> None:
    assert run(IntentParser(), ["a ] b"]) == ("a  b", [])


def test_valid_forms() -> None:
    text, tags = run(IntentParser(), ["[ HAPPY ][emotion:sad:0.25][gesture:nod:1][wink:.5][raise_brows:1.0]x"])
    assert text == "x"
    assert summary(tags) == [("happy", 1.0, 0), ("sad", 0.25, 0), ("nod", 1.0, 0), ("wink", 0.5, 0),
                             ("raise_brows", 1.0, 0)]


def test_buffer_stays_bounded() -> None:
    p = IntentParser()
    rng = random.Random(1)
    alphabet = "ab [smile:0.5] ]x[:\n"
    for _ in range(2000):
        p.feed("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))))
        assert p._buf is None or len(p._buf) <= MAX_TAG_CHARS


@pytest.mark.parametrize("unit", ["[", "[" + "x" * 60, "ab [smile] cd ", "[[[[]]]]", "[a", "[bogus] "])
def test_megabyte_inputs_in_linear_time(unit: str) -> None:
    logging.getLogger("agent.intents").setLevel(logging.ERROR)
    try:
        costs = []
        for size in (100_000, 1_000_000):
            data = (unit * (size // len(unit) + 1))[:size]
            p = IntentParser()
            t0 = time.process_time()  # CPU time: robust to other processes on a shared machine
            out = 0
            for k in range(0, size, 4096):
                text, _ = p.feed(data[k : k + 4096])
                out += len(text)
            p.flush()
            costs.append(time.process_time() - t0)
            assert out <= size
        assert costs[1] < 20.0  # loose: a megabyte of adversarial text, shared CPU
        assert costs[1] < 40 * costs[0] + 0.5  # linear (10x input), not quadratic (100x)
    finally:
        logging.getLogger("agent.intents").setLevel(logging.NOTSET)


def test_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.intents"):
        run(IntentParser(), ["[bogus] " * 5000])
    assert 20 <= len(caplog.records) < 40


def test_parse_tag_from_commands() -> None:
    assert parse_tag("smile", "mqtt") == IntentTag("smile", 1.0, 0, None, "mqtt")
    assert parse_tag("[concerned:0.3]", source="command") == IntentTag("concerned", 0.3, source="command")
    assert parse_tag("emotion:happy:0.5") == IntentTag("happy", 0.5)
    assert parse_tag("explode") is None
    assert parse_tag("smile:" + "1" * 50) is None


def test_vocabulary_maps_onto_expressions() -> None:
    assert set(EMOTIONS) == {"neutral", *EXPRESSIONS}
    assert emotion_index("neutral") is None and emotion_index("nod") is None
    for e in EXPRESSIONS:
        assert EXPRESSIONS[emotion_index(e)] == e  # type: ignore[index]
    assert set(VOCABULARY) == set(EMOTIONS) | set(GESTURES)
    for g in ("nod", "shake", "smile", "raise_brows", "blink", "look_away", "lean_in", "wink"):
        assert g in GESTURES


def test_prompt_snippet_teaches_every_tag() -> None:
    snippet = prompt_snippet()
    for name in VOCABULARY:
        assert f"[{name}]" in snippet
    assert "[smile:0.6]" in snippet
    # every example the snippet shows parses
    text, tags = run(IntentParser(), [snippet])
    assert "[" not in text
    assert {t.name for t in tags} >= set(VOCABULARY)


def test_set_expression_tool() -> None:
    schema = SET_EXPRESSION_TOOL.parameters
    assert SET_EXPRESSION_TOOL.name == "set_expression"
    assert set(schema["properties"]["name"]["enum"]) == set(VOCABULARY)
    json.dumps(schema)
    tag = tag_from_tool_call(ToolCall("set_expression", json.dumps({"name": "Concerned", "intensity": 0.7})))
    assert tag == IntentTag("concerned", 0.7, source="tool")
    assert tag_from_tool_call(ToolCall("set_expression", '{"name": "nod"}')).intensity == 1.0


@pytest.mark.parametrize(
    ("name", "args", "why"),
    [
        ("other_tool", "{}", "not a set_expression"),
        ("set_expression", "{nope", "not JSON"),
        ("set_expression", "[1, 2]", "JSON object"),
        ("set_expression", '{"name": "rm -rf"}', "unknown name"),
        ("set_expression", '{"name": "smile", "intensity": 3}', "outside 0..1"),
        ("set_expression", '{"name": "smile", "intensity": "high"}', "must be a number"),
        ("set_expression", '{"name": "smile", "intensity": true}', "must be a number"),
        ("set_expression", '{"name": "smile", "code": "x"}', "only `name`"),
        ("set_expression", '{"intensity": 0.5}', "unknown name"),
    ],
)
def test_set_expression_rejects(name: str, args: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        tag_from_tool_call(ToolCall(name, args))
