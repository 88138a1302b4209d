"""Streaming sentence splitting keeps offsets and emits early."""

from __future__ import annotations

import pytest

from agent.text import SentenceSplitter, reads_finished


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


def _split(text: str, step: int = 3, **kw: object) -> list[str]:
    sp = SentenceSplitter(**kw)  # type: ignore[arg-type]
    out = []
    for i in range(0, len(text), step):  # streamed in small deltas like LLM tokens
        out += sp.feed(text[i : i + step])
    out += sp.flush()
    for s in out:
        assert text[s.offset : s.offset + len(s.text)] == s.text
    return [s.text for s in out]


def test_first_clause_mode_releases_the_first_clause_then_sentences() -> None:
    text = "Sure, I can check that for you, just a moment. Your order shipped on Monday, and it arrives today."
    assert _split(text, first_clause=True) == [
        "Sure, I can check that",  # "Sure," has too few words to stand alone; 5 words at most
        "for you, just a moment.",
        "Your order shipped on Monday, and it arrives today.",  # later pieces stay sentences
    ]
    assert _split(text, first_clause=True, clause_max_words=8)[0] == "Sure, I can check that for you,"
    assert _split("Of course, your order left the depot today.", first_clause=True) == [
        "Of course,", "your order left the depot today."]  # two words make a clause
    assert _split(text) == ["Sure, I can check that for you, just a moment.",
                            "Your order shipped on Monday, and it arrives today."]


def test_first_clause_is_emitted_before_the_sentence_is_complete() -> None:
    sp = SentenceSplitter(first_clause=True)
    assert sp.feed("Your order number is 12,345") == []  # "12,345" is not a boundary
    out = sp.feed("; it left the warehouse")
    assert [s.text for s in out] == ["Your order number is 12,345;"]
    assert sp.feed(" yesterday") == []


def test_first_clause_at_colon_and_dashes() -> None:
    assert _split("Here is the plan: we meet at 10:30 tomorrow.", first_clause=True) == [
        "Here is the plan:", "we meet at 10:30 tomorrow."]
    assert _split("The order you placed - the blue one - ships today.", first_clause=True) == [
        "The order you placed -", "the blue one - ships today."]
    assert _split("That one is great\u2014really great. Yes.", first_clause=True) == [
        "That one is great\u2014", "really great.", "Yes."]


def test_first_clause_after_max_words_without_punctuation() -> None:
    text = "I think the best thing we can do right now is wait for the next update. Ok then."
    assert _split(text, first_clause=True, clause_max_words=8) == [
        "I think the best thing we can do", "right now is wait for the next update.", "Ok then."]
    sp = SentenceSplitter(first_clause=True, clause_max_words=4)
    assert sp.feed("one two three four") == []  # the 4th word may still be growing
    assert [s.text for s in sp.feed("teen five")] == ["one two three fourteen"]


def test_a_short_first_sentence_still_ends_at_its_period() -> None:
    assert _split("Yes, of course. Anything else, I mean, at all?", first_clause=True) == [
        "Yes, of course.", "Anything else, I mean, at all?"]


def test_a_first_clause_cut_by_count_does_not_end_on_a_function_word() -> None:
    assert _split("A refund usually takes about five to seven business days.", first_clause=True)[0] == (
        "A refund usually takes about five")  # not "... takes about"
    assert _split("Your parcel will arrive at the depot in the morning.", first_clause=True)[0] == (
        "Your parcel will arrive at the depot")  # at most 3 words more


def test_a_number_counts_as_the_words_it_is_said_with() -> None:
    """'1234' is said 'twelve thirty-four' (or longer): the first piece stays short to synthesize."""
    assert _split("Order 1234 left the depot today.", first_clause=True)[0] == "Order 1234"
    assert _split("Your refund of 25 dollars is on its way.", first_clause=True)[0] == "Your refund of 25"


@pytest.mark.parametrize(("text", "finished"), [
    ("Thank you. That is all.", True), ("Where is my order 1234?", True), ("Yes.", True),
    ("My order number is.", False), ("I want to.", False), ("And also, um...", False), ("Well, and", False),
    ("I'd like to change my address, please.", True), ("", False), ("Can I return shoes", False),
])
def test_reads_finished(text: str, finished: bool) -> None:
    assert reads_finished(text) is finished
