"""Streaming sentence splitting keeps offsets and emits early."""

from __future__ import annotations

from agent.text import SentenceSplitter


def test_first_sentence_is_emitted_before_the_rest_arrives() -> None:
    sp = SentenceSplitter()
    out = sp.feed("Your order shipped yesterday. It")
    assert [s.text for s in out] == ["Your order shipped yesterday."]
    assert sp.feed(" arrives Monday") == []
    rest = sp.flush()
    assert [s.text for s in rest] == ["It arrives Monday"]


def test_offsets_point_into_the_text() -> None:
    text = "Hello there, friend. How are you today? Fine!"
    sp = SentenceSplitter(min_chars=5)
    sents = []
    for i in range(0, len(text), 3):  # arbitrary delta boundaries
        sents += sp.feed(text[i : i + 3])
    sents += sp.flush()
    assert [s.text for s in sents] == ["Hello there, friend.", "How are you today?", "Fine!"]
    for s in sents:
        assert text[s.offset : s.offset + len(s.text)] == s.text


def test_abbreviations_and_numbers_do_not_split() -> None:
    sp = SentenceSplitter()
    out = sp.feed("Please ask Dr. Smith about order no. 12 today. ")
    assert [s.text for s in out] == ["Please ask Dr. Smith about order no. 12 today."]


def test_long_run_is_split_at_a_comma() -> None:
    sp = SentenceSplitter(max_chars=40)
    out = sp.feed("one two three four five six, seven eight nine ten eleven twelve thirteen")
    assert out and len(out[0].text) <= 40 and out[0].text.endswith(",")
