"""Intent tags: a fixed vocabulary the LLM writes inline, a streaming parser that strips them from the
spoken text, and the same tags from an OpenAI tool call (`set_expression`) or an external command.

Vocabulary (defined in `flowact.control.vocabulary`, re-exported here)
----------
Emotions (held until another emotion; map onto `flowact.types.EXPRESSIONS`, `neutral` = all zero):
  neutral, happy, sad, surprised, concerned, thinking, angry
  written `[happy]` or `[emotion:happy]`, with an optional intensity 0..1: `[happy:0.5]`,
  `[emotion:happy:0.5]`.
Gestures / events (one-shot, transient): nod, shake, smile, frown, raise_brows, blink, wink,
  look_away, lean_in; written `[nod]`, `[gesture:nod]`, `[smile:0.6]`.

Parser rules
------------
A tag is `[` + spec + `]` on one line with at most MAX_TAG_CHARS characters inside. The spec is
`name`, `name:intensity`, `emotion:name[:intensity]` or `gesture:name[:intensity]` (case and
surrounding spaces ignored). Everything else inside brackets is dropped with a logged warning and
never reaches the speech: unknown names, bad or out-of-range intensities, nested tags (`[a [b] c]`
is dropped whole) and a tag left open at the end of the stream. A `[` not closed within
MAX_TAG_CHARS characters (or before a newline) is not a tag: that bracket is dropped and the text
after it is parsed again as ordinary text (so it is spoken, and tags inside it still work). A stray
`]` is dropped. Work is linear in the input (each character is re-read at most MAX_TAG_CHARS
times) and the parser holds at most MAX_TAG_CHARS characters. Tags never execute anything beyond
the vocabulary.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re

from agent.commands import loads_json
from agent.frames import IntentTag, ToolCall
from agent.interfaces import ToolSpec
from flowact.control.vocabulary import (
    EMOTIONS,
    GESTURES,
    MAX_TAG_CHARS,
    VOCABULARY,
    emotion_index,
    parse_tag,
    warn_dropped_tag,
)

__all__ = [
    "EMOTIONS",
    "GESTURES",
    "MAX_TAG_CHARS",
    "SET_EXPRESSION_TOOL",
    "VOCABULARY",
    "IntentParser",
    "echoes_vocabulary",
    "emotion_index",
    "parse_tag",
    "prompt_snippet",
    "tag_from_tool_call",
]

log = logging.getLogger("agent.intents")


def _reject(spec: str, why: str, warn: bool = True) -> None:
    if warn:
        warn_dropped_tag(spec, why)


class IntentParser:
    """Streaming tag stripper over LLM text deltas (a tag may be split across any delta boundary).

    `feed(delta)` returns the clean text that is final now and the tags completed in this delta,
    each with `char_offset` = its position in the cumulative clean text (the index of the first
    clean character after the tag). See the module docstring for the rules.
    """

    def __init__(self, *, source: str = "llm") -> None:
        self.source = source
        self.clean_len = 0  # characters of clean text emitted so far
        self.dropped = 0  # tags and fragments dropped
        self._buf: list[str] | None = None  # inside `[`: the characters after it
        self._depth = 0  # bracket depth inside the candidate (> 1: nested)

    def feed(self, delta: str) -> tuple[str, list[IntentTag]]:
        out: list[str] = []
        tags: list[IntentTag] = []
        self._run(delta, out, tags)
        text = "".join(out)
        self.clean_len += len(text)
        return text, tags

    @property
    def _loud(self) -> bool:
        """Warn for the first drops, then every 1000th (adversarial input must not flood the log)."""
        return self.dropped < 20 or self.dropped % 1000 == 0

    def flush(self) -> tuple[str, list[IntentTag]]:
        """End of stream: a tag left open is dropped with a warning; nothing else is held back."""
        if self._buf is not None:
            _reject("".join(self._buf), "not closed at the end of the text", self._loud)
            self.dropped += 1
            self._buf, self._depth = None, 0
        return "", []

    def reset(self) -> None:
        """Start a new stream (offsets restart at 0)."""
        self.clean_len, self._buf, self._depth = 0, None, 0

    def _run(self, text: str, out: list[str], tags: list[IntentTag]) -> None:
        i, n = 0, len(text)
        while i < n:
            if self._buf is None:
                j = _next_bracket(text, i)
                if j > i:
                    out.append(text[i:j])
                if j < n:
                    if text[j] == "[":
                        self._buf, self._depth = [], 1
                    else:  # a stray `]`: never spoken
                        self.dropped += 1
                i = j + 1
                continue
            ch = text[i]
            i += 1
            if ch == "]" and self._depth == 1:
                self._depth = 0
                self._close(out, tags)
            elif ch == "\n" or len(self._buf) >= MAX_TAG_CHARS:
                self._overflow(ch, out, tags)
            else:
                if ch == "[":
                    self._depth += 1
                elif ch == "]":  # closes a nested `[` (the outer one is still open)
                    self._depth -= 1
                self._buf.append(ch)

    def _overflow(self, ch: str, out: list[str], tags: list[IntentTag]) -> None:
        """A `[` not closed in time is not a tag: drop it and speak what followed it.

        Text before the first inner `[` is spoken; bracket material from there up to the last
        inner `[` is dropped (unbalanced, nested); parsing resumes at that last `[` (<= 40 chars,
        so this never recurses further and the work per character stays constant).
        """
        assert self._buf is not None
        if self._loud:
            log.warning("dropping '[' not closed within %d characters on its line", MAX_TAG_CHARS)
        self.dropped += 1
        buf = "".join(self._buf) + ch
        self._buf, self._depth = None, 0
        first = buf.find("[")
        if first < 0:
            out.append(buf.replace("]", ""))
            return
        out.append(buf[:first])
        self._run(buf[buf.rfind("["):], out, tags)

    def _close(self, out: list[str], tags: list[IntentTag]) -> None:
        assert self._buf is not None
        spec = "".join(self._buf)
        self._buf = None
        if "[" in spec:
            _reject(spec, "nested tags", self._loud)
            self.dropped += 1
            return
        offset = self.clean_len + sum(len(s) for s in out)
        tag = parse_tag(spec, self.source, char_offset=offset, warn=self._loud)
        if tag is None:
            self.dropped += 1
        else:
            tags.append(tag)


def _next_bracket(s: str, i: int) -> int:
    """Index of the next `[` or `]` at or after i (len(s) if none)."""
    a, b = s.find("[", i), s.find("]", i)
    if a < 0:
        return b if b >= 0 else len(s)
    return a if b < 0 else min(a, b)


def prompt_snippet() -> str:
    """Instructions that teach an LLM the tag vocabulary (append to the system prompt)."""
    emo = ", ".join(f"[{e}]" for e in EMOTIONS)
    ges = "; ".join(f"[{g}] {VOCABULARY[g]}" for g in GESTURES)
    return (
        "You have a face. Control it with tags in square brackets inside your reply; tags are never "
        "spoken aloud. "
        f"Emotions stay until you change them: {emo} (or [emotion:NAME]). "
        f"Gestures happen once, where you put them: {ges}. "
        "An optional intensity from 0 to 1 follows a colon: [smile:0.6], [concerned:0.4]. "
        "Put a tag right before the words it belongs to, use at most one or two per sentence, only "
        "these names, and no other square brackets. Always answer in words: a tag is never a reply "
        f"on its own.{_EXAMPLE}[smile] Sure, I can help with that."
    )


_LETTERS = re.compile(r"[a-z]+")
_EXAMPLE = " Example: "


def _plain_words(text: str) -> str:
    return " ".join(_LETTERS.findall(text.lower()))


@functools.cache
def _vocabulary_echoes() -> tuple[frozenset[str], str]:
    """(each tag description alone and after its name, the prompt snippet's instructions), as plain words."""
    described = {_plain_words(d) for d in VOCABULARY.values()}
    described |= {_plain_words(f"{k} {d}") for k, d in VOCABULARY.items()}
    return frozenset(described), _plain_words(prompt_snippet().split(_EXAMPLE)[0])


def echoes_vocabulary(sentence: str, *, continued: bool = False) -> bool:
    """Whether a sentence only restates the tag vocabulary or its instructions instead of speaking to
    the user: a small model copying its prompt ("[shake] Head shake (no, disagreement)."). A tag's
    description alone, or three or more words taken whole from the instructions, is an echo; the
    snippet's example reply ("Sure, I can help with that.") is not. `continued`: the piece goes on
    from an echoed clause ("disagreement)." after "Head shake (no,"), so any words of it count."""
    words = _plain_words(sentence)
    if not words:
        return False
    described, instructions = _vocabulary_echoes()
    if continued:
        return f" {words} " in f" {instructions} "
    return words in described or (words.count(" ") >= 2 and f" {words} " in f" {instructions} ")


SET_EXPRESSION_TOOL = ToolSpec(
    name="set_expression",
    description=(
        "Change the avatar's facial expression (held) or make a gesture (once) right now. "
        + "; ".join(f"{k}: {v}" for k, v in VOCABULARY.items())
    ),
    parameters={
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(VOCABULARY)},
            "intensity": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
)


def tag_from_tool_call(call: ToolCall) -> IntentTag:
    """Validate a `set_expression` call into a tag; raises ValueError naming the problem."""
    if call.name != SET_EXPRESSION_TOOL.name:
        raise ValueError(f"not a set_expression call: {call.name!r}")
    if len(call.arguments) > 1000:
        raise ValueError("set_expression arguments are too long")
    try:
        args = loads_json(call.arguments or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"set_expression arguments are not JSON: {e}") from e
    if not isinstance(args, dict):
        raise ValueError("set_expression arguments must be a JSON object")
    extra = set(args) - {"name", "intensity"}
    if extra:
        raise ValueError(f"set_expression takes only `name` and `intensity`, got {sorted(extra)}")
    name = args.get("name")
    intensity = args.get("intensity", 1.0)
    if not isinstance(name, str) or name.strip().lower() not in VOCABULARY:
        raise ValueError(f"set_expression: unknown name {name!r}; expected one of {', '.join(VOCABULARY)}")
    if isinstance(intensity, bool) or not isinstance(intensity, int | float) or not math.isfinite(intensity):
        raise ValueError(f"set_expression: intensity must be a number, got {intensity!r}")
    if not 0.0 <= float(intensity) <= 1.0:
        raise ValueError(f"set_expression: intensity {intensity} outside 0..1")
    return IntentTag(name=name.strip().lower(), intensity=float(intensity), source="tool")
