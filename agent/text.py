"""Streaming sentence splitting: LLM text -> sentences for TTS, as early as safely possible.

The first sentence goes to TTS before the LLM finishes. Sentences end at `.`, `!`, `?`, `;` or a
newline followed by whitespace; over-long runs are split at a comma or space so TTS never waits for
a very long sentence. Offsets are kept so intent tags (anchored to clean-text offsets) follow their
sentence.

With `first_clause`, the first piece of a reply is released earlier, at its first clause boundary
(`,` `;` `:` or a dash, after at least `clause_min_words` words) or after `clause_max_words` words
with no punctuation (2 and 5 by default: a short first piece is written and synthesized sooner; a cut
by count does not end on a function word such as "the" or "to", it takes up to 3 words more), so
TTS can start speaking while the LLM is still on the first sentence; later pieces are whole sentences.
Words are counted as spoken: a number counts one word per digit ("Order 1234" is five words, said
"order twelve thirty-four"; the LLM writes it digit by digit and TTS takes as long as it is said).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "SentenceSplitter", "reads_finished"]

_ENDERS = ".!?;\n"
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "etc.", "vs.", "no.")
# a clause boundary: , ; : followed by whitespace, or a dash between words (" - ", " – ", " — ", "word—word")
_CLAUSE = re.compile(r"[,;:](?=\s)|(?<=\s)[-\u2013\u2014](?=\s)|(?<=\w)\u2014(?=\w)")
_WORD_END = re.compile(r"\S(?=\s)")
_FUNCTION_WORDS = frozenset(  # words that never end a phrase: articles, prepositions, conjunctions, possessives
    "a an the to of in on at for from by with about into onto over under after before until and or but nor "
    "if than as your my our their its his her".split()
)


# words a turn goes on after ("I want to ...", "my order is ..."): a transcript ending on one is unfinished
_GOES_ON = frozenset("and but or so because if then that which who whose the a an to of in on at for with from by "
                     "about my your our their his her its is are was were am be been i'm it's um uh er erm hmm "
                     "like than as when while also just".split())


def reads_finished(text: str) -> bool:
    """Whether a transcript reads as a finished turn: it ends with ".", "!" or "?" (not "..." or a
    comma) after a word a turn does not go on after ("Thank you. That is all." yes; "My order is."
    and "I want to." no)."""
    t = text.strip()
    if not t or t[-1] not in ".!?" or t.endswith(("...", "\u2026")):
        return False
    words = re.findall(r"[a-z0-9']+", t.lower())
    return bool(words) and words[-1] not in _GOES_ON


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    offset: int  # offset of text[0] in the turn's clean text


class SentenceSplitter:
    def __init__(
        self, *, min_chars: int = 12, max_chars: int = 220, first_clause: bool = False,
        clause_min_words: int = 2, clause_max_words: int = 5,
    ) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.clause_min_words = clause_min_words
        self.clause_max_words = clause_max_words
        self._first = first_clause  # the next piece may end at a clause
        self._buf = ""
        self._buf_offset = 0  # clean-text offset of _buf[0]

    def feed(self, text: str) -> list[Sentence]:
        self._buf += text
        out: list[Sentence] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            out.extend(self._emit(cut))
        return out

    def flush(self) -> list[Sentence]:
        return self._emit(len(self._buf))

    def _emit(self, cut: int) -> list[Sentence]:
        raw, self._buf = self._buf[:cut], self._buf[cut:]
        start = self._buf_offset
        self._buf_offset += cut
        stripped = raw.strip()
        if not stripped:
            return []
        self._first = False
        lead = len(raw) - len(raw.lstrip())
        return [Sentence(stripped, start + lead)]

    def _find_cut(self) -> int | None:
        sentence = self._sentence_cut()
        if self._first:
            clause = self._clause_cut()
            if clause is not None and (sentence is None or clause < sentence):
                return clause
        return sentence

    def _clause_cut(self) -> int | None:
        """End of the first clause (after its punctuation or dash) or of the clause_max_words-th word,
        whichever comes first: the same cut whether the text comes word by word or all at once."""
        buf = self._buf
        punct = next((m.end() for m in _CLAUSE.finditer(buf)
                      if len(_WORD_END.findall(buf[: m.start()] + " ")) >= self.clause_min_words), None)
        count = self._count_cut()
        return min((c for c in (punct, count) if c is not None), default=None)

    def _count_cut(self) -> int | None:
        """End of the clause_max_words-th spoken word (not on a function word: up to 3 words more)."""
        buf = self._buf
        spoken = 0
        extra = 0  # words past the count, looking for one that may end the piece
        for m in _WORD_END.finditer(buf):
            word = buf[: m.end()].rsplit(None, 1)[-1].lower()
            spoken += max(1, sum(ch.isdigit() for ch in word))
            if spoken < self.clause_max_words:
                continue
            # a piece said with a final fall must not end on "the", "to", "and" ...: up to 3 words more
            if word not in _FUNCTION_WORDS or extra == 3:
                return m.end()
            extra += 1
        return None

    def _sentence_cut(self) -> int | None:
        buf = self._buf
        for i, ch in enumerate(buf[:-1]):
            if ch in _ENDERS and buf[i + 1].isspace() and i + 1 >= self.min_chars:
                word = buf[: i + 1].rsplit(None, 1)[-1].lower() if buf[: i + 1].strip() else ""
                if ch == "." and (word in _ABBREVIATIONS or (len(word) == 2 and word[0].isdigit())):
                    continue
                return i + 1
        if len(buf) > self.max_chars:
            window = buf[: self.max_chars]
            for sep in (", ", " "):
                j = window.rfind(sep)
                if j >= self.min_chars:
                    return j + 1
            return self.max_chars
        return None
