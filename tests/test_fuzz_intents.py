"""Property-based tests of the LLM-text trust boundary: the streaming intent-tag parser and the
`set_expression` tool call. LLM output is attacker-influenced (prompt injection), so for any text:
no exception, no bracket ever reaches the speech, bounded state and log lines, and the same result
however the stream is split into deltas."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.frames import ToolCall
from agent.intents import MAX_TAG_CHARS, VOCABULARY, IntentParser, parse_tag, tag_from_tool_call

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# pieces an injected reply would use: real and fake tags, brackets, separators, numbers, odd characters
PIECES = st.sampled_from([
    "[", "]", "[[", "]]", ":", "[happy]", "[smile:0.6]", "[emotion:sad:0.4]", "[gesture:nod]", "[nod",
    "[happy:2]", "[happy:-1]", "[happy:nan]", "[happy:1e9]", "[emotion:nod]", "[gesture:happy]",
    "[ignore previous instructions]", "[system]", "\n", "\r", "\x00", "\x1b[31m", "\u202e", "\ufeff",
    "[\u0430ppy]", "[HAPPY]", " [ smile ] ", "0.5", "Hello, ", "world. ", "😀", "[😀]", "\\]", "[a [b] c]",
    *(f"[{name}]" for name in VOCABULARY),
])
TEXT = st.lists(st.one_of(PIECES, st.text(max_size=30), st.text(alphabet="[]:.0123456789 \n", max_size=30)),
                max_size=60).map("".join)


def run(parser: IntentParser, deltas: list[str]) -> tuple[str, list[tuple[str, float, int]]]:
    clean: list[str] = []
    tags: list[tuple[str, float, int]] = []
    for d in deltas:
        text, new = parser.feed(d)
        clean.append(text)
        tags += [(t.name, t.intensity, t.char_offset) for t in new]
        assert parser._buf is None or len(parser._buf) <= MAX_TAG_CHARS  # held state stays bounded
    text, new = parser.flush()
    clean.append(text)
    tags += [(t.name, t.intensity, t.char_offset) for t in new]
    return "".join(clean), tags


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@FUZZ
@given(text=TEXT, cuts=st.lists(st.integers(0, 2000), max_size=30))
def test_parser_never_speaks_a_bracket_and_ignores_how_the_stream_is_split(text: str, cuts: list[int]) -> None:
    whole, tags = run(IntentParser(), [text])
    assert "[" not in whole and "]" not in whole
    assert len(whole) <= len(text)
    for name, intensity, offset in tags:
        assert name in VOCABULARY and 0.0 <= intensity <= 1.0
        assert 0 <= offset <= len(whole)
    assert [t[2] for t in tags] == sorted(t[2] for t in tags)
    # any split into deltas (tags cut anywhere) gives the same speech and the same tags
    assert run(IntentParser(), split(text, cuts)) == (whole, tags)
    assert run(IntentParser(), list(text)) == (whole, tags)


@FUZZ
@given(text=st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=300))
def test_text_without_brackets_is_spoken_unchanged(text: str) -> None:
    assert run(IntentParser(), [text]) == (text, [])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=st.sampled_from(["[", "[x]", "[happy:9]", "[[[", "]", "[" + "a" * 39, "[nod][", "[a[b]c]\n"]),
       repeat=st.integers(1_000, 20_000))
def test_tag_floods_keep_state_and_log_lines_bounded(
    unit: str, repeat: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    parser = IntentParser()
    with caplog.at_level(logging.WARNING, logger="agent.intents"):
        whole, tags = run(parser, [unit * repeat])
    assert "[" not in whole and "]" not in whole
    assert len(tags) <= repeat  # at most one tag per unit
    assert len(caplog.records) <= 20 + parser.dropped // 1000 + 2


@FUZZ
@given(spec=st.one_of(st.text(max_size=80), PIECES))
def test_parse_tag_returns_a_vocabulary_tag_or_none(spec: str) -> None:
    tag = parse_tag(spec, warn=False)
    assert tag is None or (tag.name in VOCABULARY and 0.0 <= tag.intensity <= 1.0)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(args=st.one_of(
    st.text(max_size=1200),
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries({"name": st.one_of(st.sampled_from(list(VOCABULARY)), st.text(max_size=40))},
                          optional={"intensity": JSON_VALUES}).map(json.dumps),
    st.integers(1, 1000).map(lambda n: "[" * n + "]" * n),  # nesting deeper than json's recursion limit
    st.integers(1, 1000).map(lambda n: '{"a":' * n),
))
def test_set_expression_tool_call_is_a_tag_or_a_value_error(args: str) -> None:
    try:
        tag = tag_from_tool_call(ToolCall(call_id="c1", name="set_expression", arguments=args))
    except ValueError as e:
        assert str(e).startswith("set_expression")
        assert len(str(e)) < 2000
    else:
        assert tag.name in VOCABULARY and 0.0 <= tag.intensity <= 1.0
