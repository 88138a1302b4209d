"""Intent tags: a fixed vocabulary the LLM writes inline (`[smile]`, `[nod]`, `[emotion:concerned]`,
`[smile:0.6]`), a streaming parser that strips them from the spoken text, and the same tags from an
OpenAI tool call (`set_expression`) or an external command.

Vocabulary
----------
Emotions (held until changed; map onto `flowact.types.EXPRESSIONS`, `neutral` clears):
  neutral, happy, sad, surprised, concerned, thinking, angry
  written `[happy]`, `[emotion:happy]` or with intensity `[happy:0.5]`, `[emotion:happy:0.5]`.
Gestures / events (one-shot): nod, shake, smile, raise_brows, blink, wink, look_away, lean_in, frown.

Parser rules: a tag is `[` + name + optional `:value` (+ optional `:intensity` for `emotion:`) + `]`,
at most MAX_TAG_CHARS long. Unknown names, bad intensities, nested `[`, and unclosed tags are
dropped with a warning; their text never reaches the speech. A `[` that is not closed within
MAX_TAG_CHARS characters is dropped (the bracket only) and the text after it is spoken. Tags never
execute anything beyond the vocabulary.
"""

from __future__ import annotations

import json
import logging
import re

from agent.frames import IntentTag, ToolCall
from agent.interfaces import ToolSpec
from flowact.types import EXPRESSIONS

__all__ = [
    "EMOTIONS",
    "GESTURES",
    "MAX_TAG_CHARS",
    "SET_EXPRESSION_TOOL",
    "VOCABULARY",
    "IntentParser",
    "parse_tag",
    "prompt_snippet",
    "tag_from_tool_call",
]

log = logging.getLogger("agent.intents")

EMOTIONS: tuple[str, ...] = ("neutral", *EXPRESSIONS)
GESTURES: tuple[str, ...] = (
    "nod", "shake", "smile", "raise_brows", "blink", "wink", "look_away", "lean_in", "frown",
)
VOCABULARY: frozenset[str] = frozenset(EMOTIONS + GESTURES)
MAX_TAG_CHARS = 40
_NAME = re.compile(r"^[a-z_]{2,20}$")


def parse_tag(spec: str, *, source: str = "llm", char_offset: int = 0) -> IntentTag | None:
    """Parse the inside of a tag (`smile`, `smile:0.6`, `emotion:sad`, `emotion:sad:0.4`).

    Returns None (and logs a warning) for anything outside the vocabulary or malformed.
    """
    parts = [p.strip() for p in spec.strip().lower().split(":")]
    if parts and parts[0] == "emotion":
        parts = parts[1:]
    if not parts or len(parts) > 2 or not _NAME.match(parts[0]) or parts[0] not in VOCABULARY:
        log.warning("dropping unknown or malformed intent tag [%s]", spec[:MAX_TAG_CHARS])
        return None
    intensity = 1.0
    if len(parts) == 2:
        try:
            intensity = float(parts[1])
        except ValueError:
            log.warning("dropping intent tag with a bad intensity [%s]", spec[:MAX_TAG_CHARS])
            return None
        if not 0.0 <= intensity <= 1.0:
            log.warning("dropping intent tag with intensity outside 0..1 [%s]", spec[:MAX_TAG_CHARS])
            return None
    return IntentTag(name=parts[0], intensity=intensity, char_offset=char_offset, source=source)


class IntentParser:
    """Streaming tag stripper over LLM text deltas (tags may be split across any boundary).

    `feed` returns the clean text that is final now and the tags completed, each with
    `char_offset` = its position in the cumulative clean text. Work is linear in the input.
    """

    def __init__(self, *, source: str = "llm") -> None:
        self.source = source
        self._clean_len = 0
        self._tag: list[str] | None = None  # inside a tag: its characters so far
        self.dropped = 0

    def feed(self, delta: str) -> tuple[str, list[IntentTag]]:
        out: list[str] = []
        tags: list[IntentTag] = []
        for ch in delta:
            if self._tag is None:
                if ch == "[":
                    self._tag = []
                elif ch != "]":
                    out.append(ch)
                    self._clean_len += 1
                continue
            if ch == "]":
                tag = parse_tag("".join(self._tag), source=self.source, char_offset=self._clean_len)
                if tag is None:
                    self.dropped += 1
                else:
                    tags.append(tag)
                self._tag = None
            elif ch == "[":  # nested: drop the outer fragment, start again
                log.warning("dropping nested intent tag fragment [%s", "".join(self._tag)[:MAX_TAG_CHARS])
                self.dropped += 1
                self._tag = []
            elif len(self._tag) >= MAX_TAG_CHARS or ch == "\n":
                # not a tag after all: drop the bracket, speak what followed it
                log.warning("dropping unclosed '[' (no ']' within %d characters)", MAX_TAG_CHARS)
                self.dropped += 1
                text = "".join(self._tag) + ch
                self._tag = None
                out.append(text)
                self._clean_len += len(text)
            else:
                self._tag.append(ch)
        return "".join(out), tags

    def flush(self) -> tuple[str, list[IntentTag]]:
        """End of stream: an unclosed tag is dropped with a warning."""
        if self._tag is not None:
            log.warning("dropping unclosed intent tag at end of text [%s", "".join(self._tag)[:MAX_TAG_CHARS])
            self.dropped += 1
            self._tag = None
        return "", []


def prompt_snippet() -> str:
    """Instructions that teach an LLM the tag vocabulary (appended to the system prompt)."""
    return (
        "You control a video avatar's face with inline tags in square brackets; they are never spoken. "
        f"Emotions (held until changed): {', '.join(f'[{e}]' for e in EMOTIONS)}. "
        f"Gestures (one-shot): {', '.join(f'[{g}]' for g in GESTURES)}. "
        "An optional intensity from 0 to 1 follows a colon, e.g. [smile:0.6] or [concerned:0.4]. "
        "Put a tag right before the words it belongs to, use at most one or two per sentence, "
        "and never use any other bracketed text."
    )


SET_EXPRESSION_TOOL = ToolSpec(
    name="set_expression",
    description="Change the avatar's facial expression or make a gesture right now.",
    parameters={
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": sorted(VOCABULARY)},
            "intensity": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
)


def tag_from_tool_call(call: ToolCall) -> IntentTag:
    """Validate a `set_expression` call; raises ValueError with the reason."""
    if call.name != SET_EXPRESSION_TOOL.name:
        raise ValueError(f"not a set_expression call: {call.name!r}")
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"set_expression arguments are not JSON: {e}") from e
    if not isinstance(args, dict) or set(args) - {"name", "intensity"}:
        raise ValueError("set_expression takes only `name` and `intensity`")
    name = args.get("name")
    intensity = args.get("intensity", 1.0)
    if not isinstance(name, str) or not isinstance(intensity, int | float):
        raise ValueError("set_expression needs a string `name` and a numeric `intensity`")
    tag = parse_tag(f"{name}:{float(intensity)}", source="tool")
    if tag is None:
        raise ValueError(f"set_expression: {name!r} with intensity {intensity} is outside the vocabulary")
    return tag
