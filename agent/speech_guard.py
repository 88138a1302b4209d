"""A streaming leak guard between LLM text and TTS: nothing that looks like tool syntax, JSON, code or
markup is ever spoken.

Small local models write their tool calls as text (`functions.lookup_order: {"order_id": "1234"}`,
`<tool_call>{...}</tool_call>`, ```json fences) or wrap answers in Markdown. `SpeechGuard.feed(delta)`
takes LLM deltas split anywhere and returns only speakable text; `flush()` ends the stream (an open
structure is dropped, never spoken). Rules, applied character by character with a bounded buffer:

* JSON objects/arrays (`{...}`, `[{...`, `["...`, `[1,...`) are dropped with their nesting, strings
  and escapes honoured, however they are split across deltas;
* code fences (```...```) and inline code (`...`) are dropped;
* markup tags are dropped (`<b>` -> ``), and whole blocks for tool-ish tags (`<tool_call>...</tool_call>`,
  `<function...>`, `<code>`, `<script>`) and special tokens (`<|im_start|>`);
* words that are identifiers (`lookup_order`, `functions.x:`, `tool.call(...)` with its arguments), a
  leading `message:`/`assistant:` role prefix or speaker label (`Ava:`: one capitalized word and a colon,
  as a model copies from a dialogue-style example) and JSON keys (`"order_id":` up to the end of the line)
  are dropped; Markdown emphasis, headings, table bars and bullets lose their markers;
* intent tags such as `[smile]`, `[happy:0.5]`, `[emotion:concerned]` pass through intact for the
  intent parser; any other bracket content is dropped (like the intent parser would), or, when the
  bracket is not closed within MAX_TAG_CHARS, the `[` is dropped and the rest guarded as text.

Work is linear in the input; the guard holds at most one word or MAX_TAG_CHARS / MAX_MARKUP_CHARS.
"""

from __future__ import annotations

import html
import logging
import re

__all__ = ["SpeechGuard", "guard_text"]

log = logging.getLogger("agent.speech_guard")

MAX_TAG_CHARS = 40  # agent.intents.MAX_TAG_CHARS: a longer bracket is never an intent tag
MAX_MARKUP_CHARS = 64
MAX_WORD_CHARS = 80  # a longer run without a space is never speech (base64, hashes, minified JSON)
_TAG = re.compile(r"\s*[A-Za-z_]{2,20}(\s*:\s*[A-Za-z_0-9.]+){0,2}\s*")
_MARKUP = re.compile(r"(/?\s*[A-Za-z][\w:.-]*(\s[^<>]*)?/?|\|[^<>]*\||![^<>]*|\?[^<>]*\?)")
_BLOCK_TAGS = frozenset({"tool_call", "tool_calls", "tool", "tools", "function", "functions", "function_call",
                         "code", "script", "style", "json", "pre", "tool_response", "arguments"})
_ROLE_PREFIXES = frozenset({"message:", "assistant:", "tool_call:", "tool:", "function:", "functions:", "response:"})
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_SPEAKER = re.compile(r"[A-Z][a-z]{1,15}:")  # the reply's first word only: "Ava: Order 1234 ..."
_DOTTED = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]\w*")
_CODE_PREFIX = re.compile(r"(functions?|tools?|api|self|json|print)\.", re.IGNORECASE)
_JSON_KEY = re.compile(r"""["'][^"'\s]{1,40}["']:""")
_DROP_CHARS = frozenset("*#|~}]>\\^=")
_OPENERS = {"{": "}", "[": "]", "(": ")"}

_TEXT, _NEST, _BRACKET, _ANGLE, _BLOCK, _TICKS, _INLINE, _FENCE, _LINE, _SKIP = range(10)


class SpeechGuard:
    """Streaming filter: `feed(delta) -> speakable text`, `flush() -> the rest` (one per LLM reply)."""

    def __init__(self) -> None:
        self._mode = _TEXT
        self._out: list[str] = []
        self._word = ""
        self._buf = ""  # bracket / markup / block-closer buffer
        self._stack: list[str] = []  # expected closers while dropping nested structures
        self._in_string = ""  # the quote char while inside a string in a dropped structure
        self._escape = False
        self._ticks = 0
        self._closer = ""  # `</name>` that ends a dropped markup block
        self._first_word = True
        self._after_special = False  # the word after `<|im_start|>` is a role name
        self._last = "\n"  # last emitted char (to collapse spaces)
        self.dropped = 0  # characters withheld from speech (for logs and metrics)
        self.emitted = 0

    # --- public ----------------------------------------------------------------------------------
    def feed(self, delta: str) -> str:
        for ch in delta:
            self._step(ch)
        return self._take()

    def flush(self) -> str:
        """End of the reply: finish the pending word, drop any structure still open."""
        if self._mode in (_BRACKET, _ANGLE):
            self._reparse_without_opener()
        self._end_word()
        if self._mode not in (_TEXT, _BRACKET, _ANGLE):
            self.dropped += len(self._buf)
        if self.dropped:
            log.info("speech guard withheld %d characters of non-speech from TTS", self.dropped)
        self._mode, self._buf, self._stack = _TEXT, "", []
        return self._take()

    # --- internals -------------------------------------------------------------------------------
    def _take(self) -> str:
        text = "".join(self._out)
        self._out.clear()
        self.emitted += len(text)
        return text

    def _emit(self, text: str) -> None:
        for ch in text:
            if ch == " " and self._last in " \n":
                continue
            self._out.append(ch)
            self._last = ch

    def _drop(self, n: int = 1) -> None:
        self.dropped += n

    def _step(self, ch: str) -> None:
        mode = self._mode
        if mode == _TEXT:
            self._text(ch)
        elif mode == _NEST:
            self._nest(ch)
        elif mode == _BRACKET:
            self._bracket(ch)
        elif mode == _ANGLE:
            self._angle(ch)
        elif mode == _BLOCK:
            self._block(ch)
        elif mode == _TICKS:
            self._ticks_step(ch)
        elif mode == _INLINE:
            self._drop()
            if ch == "`" or ch == "\n":
                self._mode = _TEXT
        elif mode == _FENCE:
            self._drop()
            self._ticks = self._ticks + 1 if ch == "`" else 0
            if self._ticks >= 3:
                self._mode, self._ticks = _TEXT, 0
        elif mode == _SKIP:
            self._drop()
            if ch.isspace():
                self._mode = _TEXT
                self._emit(" ")
        elif mode == _LINE:
            self._drop()
            if ch == "\n":
                self._mode = _TEXT
                self._emit(ch)

    def _text(self, ch: str) -> None:
        if ch.isspace():
            self._end_word()
            self._emit("\n" if ch == "\n" else " ")
        elif ch == "{":
            self._end_word()
            self._start_nest("}")
        elif ch == "(" and self._word and _is_code_word(self._word):
            self._drop(len(self._word) + 1)
            self._word = ""
            self._start_nest(")")
        elif ch == "[":
            self._end_word()
            self._mode, self._buf = _BRACKET, ""
        elif ch == "<":
            self._end_word()
            self._mode, self._buf = _ANGLE, ""
        elif ch == "`":
            self._end_word()
            self._mode, self._ticks = _TICKS, 1
        elif ch in _DROP_CHARS and not (ch == "#" and self._word.endswith("&")):
            self._drop()
        else:
            self._word += ch
            if len(self._word) > MAX_WORD_CHARS:
                self._drop(len(self._word))
                self._word = ""
                self._mode = _SKIP

    def _end_word(self) -> None:
        word, self._word = self._word, ""
        if not word:
            return
        first, self._first_word = self._first_word, False
        after_special, self._after_special = self._after_special, False
        if "&" in word:
            plain = html.unescape(word)
            if plain != word:  # entities: guard the unescaped text (each pass shortens it)
                self._first_word = first
                self._refeed(plain + " ")
                return
        if _JSON_KEY.match(word):
            self._drop(len(word))
            self._mode = _LINE  # the rest of a JSON fragment's line
        elif (first and (word.lower() in _ROLE_PREFIXES or _SPEAKER.fullmatch(word))) or _is_code_word(word) or (
            after_special and word.lower().rstrip(":") in _ROLES
        ):
            self._drop(len(word))
        else:
            self._emit(word)

    def _start_nest(self, closer: str) -> None:
        self._mode, self._stack, self._in_string, self._escape = _NEST, [closer], "", False
        self._drop()

    def _nest(self, ch: str) -> None:
        self._drop()
        if self._in_string:
            if self._escape:
                self._escape = False
            elif ch == "\\":
                self._escape = True
            elif ch == self._in_string:
                self._in_string = ""
            return
        if ch == '"':
            self._in_string = ch
        elif ch in _OPENERS:
            self._stack.append(_OPENERS[ch])
        elif self._stack and ch == self._stack[-1]:
            self._stack.pop()
            if not self._stack:
                self._mode = _TEXT

    def _bracket(self, ch: str) -> None:
        buf = self._buf
        if not buf.strip() and ch in '{["\'0123456789-':
            self._drop(len(buf) + 1)
            self._mode, self._stack, self._in_string, self._escape = _NEST, ["]"], "", False
            self._nest(ch)
            return
        if ch == "]":
            self._mode, self._buf = _TEXT, ""
            if _TAG.fullmatch(buf):
                self._emit("[" + buf + "]")
            else:
                self._drop(len(buf) + 2)
            return
        self._buf += ch
        if ch == "\n" or len(self._buf) > MAX_TAG_CHARS:
            self._reparse_without_opener()

    def _angle(self, ch: str) -> None:
        if ch == ">":
            buf, self._mode, self._buf = self._buf, _TEXT, ""
            if not _MARKUP.fullmatch(buf):
                self._drop()  # `<` and `>` themselves are never spoken
                self._refeed(buf)
                return
            self._drop(len(buf) + 2)
            self._after_special = buf.startswith("|")
            name = buf.strip().split(None, 1)[0].rstrip("/").lower() if buf.strip() else ""
            if not buf.startswith(("/", "|", "!", "?")) and not buf.endswith("/") and name in _BLOCK_TAGS:
                self._mode, self._closer, self._buf = _BLOCK, f"</{name}>", ""
            return
        self._buf += ch
        if ch == "\n" or len(self._buf) > MAX_MARKUP_CHARS:
            self._reparse_without_opener()

    def _block(self, ch: str) -> None:
        self._drop()
        self._buf = (self._buf + ch.lower())[-len(self._closer):]
        if self._buf == self._closer:
            self._mode, self._buf = _TEXT, ""

    def _ticks_step(self, ch: str) -> None:
        self._drop()
        if ch == "`":
            self._ticks += 1
            return
        if self._ticks >= 3:
            self._mode, self._ticks = _FENCE, 0
        else:
            self._mode = _INLINE if ch != "\n" else _TEXT

    def _reparse_without_opener(self) -> None:
        """Not a tag / markup after all: drop the opener, guard the buffered text as ordinary text."""
        buf, self._mode, self._buf = self._buf, _TEXT, ""
        self._drop()
        self._refeed(buf)

    def _refeed(self, text: str) -> None:
        for ch in text:
            self._step(ch)


def _is_code_word(word: str) -> bool:
    """An identifier or call target, never a spoken word: snake_case, `functions.x`, `a.b:` / `a.b(`."""
    core = word.strip(".,;:!?\"'()")
    if "_" in core or _CODE_PREFIX.match(core):
        return True
    return bool(_DOTTED.search(core)) and word.endswith((":", "("))


def guard_text(text: str) -> str:
    """Guard a whole reply at once (greetings, canned lines, tool results read aloud)."""
    g = SpeechGuard()
    return g.feed(text) + g.flush()
