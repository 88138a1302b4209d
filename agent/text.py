"""Streaming sentence splitting: LLM text -> sentences for TTS, as early as safely possible.

The first sentence goes to TTS before the LLM finishes. Sentences end at `.`, `!`, `?`, `;` or a
newline followed by whitespace; over-long runs are split at a comma or space so TTS never waits for
a very long sentence. Offsets are kept so intent tags (anchored to clean-text offsets) follow their
sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Sentence", "SentenceSplitter"]

_ENDERS = ".!?;\n"
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "etc.", "vs.", "no.")


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    offset: int  # offset of text[0] in the turn's clean text


class SentenceSplitter:
    def __init__(self, *, min_chars: int = 12, max_chars: int = 220) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
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
        lead = len(raw) - len(raw.lstrip())
        return [Sentence(stripped, start + lead)]

    def _find_cut(self) -> int | None:
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
