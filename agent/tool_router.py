"""A router step for small local models: pick a tool + arguments (or none) as schema-constrained JSON.

Small models (the shipped Qwen2.5 0.5B) cannot be trusted with free-form tool calls: they write them
as text, and llama.cpp's `chatml-function-calling` format does not even show them tool results. The
router asks the server for one JSON object constrained by a JSON schema (llama.cpp turns it into a
grammar, so the output always parses and names a real tool), then checks the arguments against the
user's words (`grounded`: an order number the user never said is a hallucination, not a lookup).
The answer is produced by a separate plain completion with the tool's result in context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

from agent.frames import ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from flowact.control.commands import loads_json

__all__ = [
    "NONE",
    "accepts_person_offer",
    "asks_for_person",
    "facts_message",
    "flat_arguments",
    "last_agent_line",
    "grounded",
    "hopeless_route",
    "made_up",
    "normalize_spoken_numbers",
    "parse_route",
    "route_messages",
    "router_schema",
    "said_digits",
    "settled_route",
]

NONE = "none"
_DIGITS = {"zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_TOOL_NAME = re.compile(r'"tool"\s*:\s*"([^"\\]*)"')
_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^A-Za-z\d]+")


def _number_groups(words: list[str]) -> str | None:
    """Digits of a run of number words ("twelve thirty four" -> "1234", "one two three" -> "123")."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.isdigit():
            out.append(w)
        elif w in _DIGITS:
            if w in ("o", "oh") and not out:
                return None  # "oh" starts no number
            out.append(str(_DIGITS[w]))
        elif w in _TEENS:
            out.append(str(_TEENS[w]))
        elif w in _TENS:
            unit = words[i + 1] if i + 1 < len(words) else ""
            if unit in _DIGITS and unit not in ("o", "oh", "zero"):
                out.append(str(_TENS[w] + _DIGITS[unit]))
                i += 1
            else:
                out.append(str(_TENS[w]))
        elif w == "double" and i + 1 < len(words) and words[i + 1] in _DIGITS:
            out.append(str(_DIGITS[words[i + 1]]) * 2)
            i += 1
        else:
            return None
        i += 1
    return "".join(out)


def _single(token: str) -> bool:
    """One digit, said or written."""
    low = token.lower()
    return low in _DIGITS or (low.isdigit() and len(low) == 1)


def _four_said_as_for(tokens: list[str]) -> list[str]:
    """"for" right before three or more digits said one by one is "four": Whisper writes "It's four three
    two one" as "It's for 3 2 1" (tiny.en, most renderings of a synthetic voice). Two digits stay as they
    are ("for 2-3 weeks" is a range)."""
    out = list(tokens)
    for i, t in enumerate(tokens):
        if t.lower() != "for":
            continue
        n, j = 0, i + 1
        while j + 1 < len(tokens) and tokens[j].strip(" -") == "" and _single(tokens[j + 1]):
            n, j = n + 1, j + 2
        if n >= 3:
            out[i] = "4"
    return out


def normalize_spoken_numbers(text: str) -> str:
    """Join numbers said as words or in pieces: "one two three four" / "twelve thirty-four" /
    "1 2 3 4" / "12-34" / "one, two, three, four" -> "1234" (runs of at least two number tokens; a lone
    "one" stays a word; commas join only digits said one by one; "for 3 2 1" is "4321", see
    `_four_said_as_for`)."""
    tokens = _four_said_as_for(_TOKEN.findall(text))
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j, run, comma = i, [], False
        while j < len(tokens):
            t = tokens[j]
            low = t.lower()
            if t.isdigit() or low in _DIGITS or low in _TEENS or low in _TENS or low == "double":
                run.append(low)
                j += 1
            elif run and t.strip(" -") == "" and j + 1 < len(tokens):
                j += 1  # separators between number tokens
            elif run and t.strip(" ,") == "" and j + 1 < len(tokens) and _single(run[-1]) and _single(tokens[j + 1]):
                j += 1  # "one, two, three, four": digits said one by one, commas from the ASR
                comma = True
            else:
                break
        while j > i and not (tokens[j - 1].isdigit() or tokens[j - 1].lower() in (*_DIGITS, *_TEENS, *_TENS)):
            j -= 1  # do not swallow a trailing separator
        digits = _number_groups(run) if len(run) >= (3 if comma else 2) else None
        if digits is not None:
            out.append(digits)
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return "".join(out)


def said_digits(text: str) -> str:
    """The digits of what the user said, numbers said as words joined ("twelve thirty-four" -> "1234")."""
    return re.sub(r"\D", "", normalize_spoken_numbers(text))


def made_up(value: str, said: str) -> bool:
    """Whether a value's digits (so far, of one still being written) are not a run of the `said`
    digits: an identifier the user never said, which no continuation can ground."""
    digits = re.sub(r"\D", "", value)
    return bool(digits) and digits not in said


def flat_arguments(specs: Sequence[ToolSpec]) -> bool:
    """Whether the router writes arguments beside "tool" (`{"tool": "x", "id": "1"}`, 4 tokens fewer
    than under "arguments", about 0.3 s on the 0.5B model): unless a parameter is itself named "tool"."""
    return not any("tool" in s.parameters.get("properties", {}) for s in specs)


def router_schema(specs: Sequence[ToolSpec], bare: Collection[str] = ()) -> dict[str, Any]:
    """One JSON object: {"tool": NAME, <its arguments>} for a tool, or {"tool": "none"}. Arguments sit
    under "arguments" only when a parameter is named "tool". `bare` tools get no arguments (a hand-off
    needs none: its reason would be the user's whole sentence, 2 s of tokens)."""
    flat = flat_arguments(specs)
    options: list[dict[str, Any]] = []
    for s in specs:
        tool = {"tool": {"const": s.name}}
        if s.name in bare:
            options.append({"type": "object", "properties": tool, "required": ["tool"]})
        elif flat:
            options.append({"type": "object", "properties": {**tool, **s.parameters.get("properties", {})},
                            "required": ["tool", *s.parameters.get("required", [])]})
        else:
            options.append({"type": "object", "properties": {**tool, "arguments": s.parameters},
                            "required": ["tool", "arguments"]})
    options.append({"type": "object", "properties": {"tool": {"const": NONE}}, "required": ["tool"]})
    return {"anyOf": options}


def route_messages(specs: Sequence[ToolSpec], history: Sequence[ChatMessage], user_text: str) -> list[dict[str, str]]:
    """The router prompt: the tools, when to use none, the agent's last question and the user's message."""
    lines = []
    for s in specs:
        args = ", ".join(f"{k} ({v.get('description') or v.get('type', 'value')})"
                         for k, v in s.parameters.get("properties", {}).items())
        lines.append(f"- {s.name}: {s.description}" + (f" Arguments: {args}." if args else ""))
    system = (
        "You route a user's message to a tool. Tools:\n" + "\n".join(lines) + "\n"
        f"- {NONE}: no tool is needed (greetings, thanks, policy questions, anything else).\n"
        "Use a tool whenever the user's message gives the arguments it needs. "
        "Copy argument values exactly from the user's words. Reply with JSON only."
    )
    # the agent's last line, when it asked something ("It's 4321." answers "What is your order
    # number?"); a statement (a tool's line) shown as "You asked" sent the next order question to none
    last_agent = last_agent_line(history)
    asked = last_agent if "?" in last_agent else ""
    user = (f"(You asked: {asked})\n" if asked else "") + normalize_spoken_numbers(user_text)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _route_arguments(data: dict[str, Any], specs: Sequence[ToolSpec]) -> Any:
    """A route's arguments: the keys beside "tool", or its "arguments" (see `router_schema`)."""
    return {k: v for k, v in data.items() if k != "tool"} if flat_arguments(specs) else data.get("arguments", {})


def parse_route(text: str, specs: Sequence[ToolSpec], call_id: str = "route_0") -> ToolCall | None:
    """The router's JSON -> a ToolCall, or None for `none` / anything malformed or unknown."""
    try:
        data = loads_json(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    name = data.get("tool")
    if name == NONE or not any(s.name == name for s in specs):
        return None
    args = _route_arguments(data, specs)
    if not isinstance(args, dict):
        return None
    args = {k: normalize_spoken_numbers(v) if isinstance(v, str) else v for k, v in args.items()}
    return ToolCall(str(name), json.dumps(args, ensure_ascii=False), call_id)


def settled_route(partial: str, specs: Sequence[ToolSpec], bare: Collection[str] = ()) -> str | None:
    """The whole reply, once a reply still being written has nothing left to say: its last string or
    object is closed and every argument the router may write is there (only closing braces would
    follow), or it names `none` or a `bare` tool. The router then stops a token or two early."""
    if not partial.rstrip().endswith(('"', "}")):
        return None  # a number or literal may still go on ("1" -> "12")
    for tail in ("", "}", "}}"):
        try:
            data = loads_json(partial + tail)
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(data, dict) or not tail:
            return partial if isinstance(data, dict) else None  # whole already
        name = data.get("tool")
        spec = next((s for s in specs if s.name == name), None)
        if name == NONE or name in bare:
            return partial + tail
        if spec is None:
            return None
        args = _route_arguments(data, specs)
        written = set(args) if isinstance(args, dict) else set()
        return partial + tail if set(spec.parameters.get("properties", {})) <= written else None
    return None


_PERSON = re.compile(
    r"\b(human|person|people|someone|somebody|anyone|agent|representative|operator|staff|colleague|manager|"
    r"supervisor|real|live)\b", re.I,
)


_YES = re.compile(r"^(yes|yeah|yep|yup|sure|ok|okay|alright|all right|please|please do|go ahead|do it|"
                  r"that would be (great|nice|good)|i would|i'd like that|i would like that)"
                  r"(,? (please|thanks|thank you|yes|sure|do))*[.!]?$", re.I)


def last_agent_line(history: Sequence[ChatMessage]) -> str:
    """What the agent said last ("" before it said anything)."""
    return next((m.content for m in reversed(history) if m.role == "assistant"), "")


def accepts_person_offer(last_agent: str, user_text: str) -> bool:
    """Whether the user says yes to the agent's offer of a person ("Would you like me to connect you
    with a colleague?" -> "Yes, please."): a hand-off the user's own words do not name."""
    return "?" in last_agent and asks_for_person(last_agent.rsplit(".", 1)[-1]) and bool(
        _YES.match(user_text.strip()))


def asks_for_person(text: str) -> bool:
    """Whether the user's words ask for a person (the router sent "can I exchange a shirt" to the hand-off)."""
    return bool(_PERSON.search(text))


def grounded(call: ToolCall, user_texts: Sequence[str], *, handoff: bool = False) -> bool:
    """Every string argument with digits must have its digits in what the user said (normalized); a
    hand-off (`handoff`) needs words asking for a person."""
    if handoff and not any(asks_for_person(t) for t in user_texts):
        return False
    try:
        args = loads_json(call.arguments or "{}")
    except json.JSONDecodeError:
        return False
    said = "|".join(said_digits(t) for t in user_texts)
    # quantities may be anything; identifiers (strings) must have been said
    return not any(isinstance(v, str) and made_up(v, said) for v in (args.values() if isinstance(args, dict) else []))


def _argument_values(partial: str, skip_tool: bool) -> list[str]:
    """The string values (complete or still open) directly inside the reply's arguments object (the
    top-level object, or its "arguments"), in a reply still being written: what `grounded` checks,
    keys, nested values and (`skip_tool`) the tool's name left out."""
    values: list[str] = []
    at = 0 if skip_tool else partial.find('"arguments"')
    if at < 0:
        return values
    depth, in_string, escape, is_value, current, last, key = 0, False, False, False, "", "", ""
    for ch in partial[at if skip_tool else at + len('"arguments"'):]:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
                if is_value and not (skip_tool and key == "tool"):
                    values.append(current)
                elif depth == 1 and not is_value:
                    key = current
            else:
                current += ch
            continue
        if ch == '"':
            in_string, current, is_value = True, "", depth == 1 and last == ":"
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth <= 0:
                break
        if not ch.isspace():
            last = ch
    if in_string and is_value and not (skip_tool and key == "tool"):
        values.append(current)
    return values


def hopeless_route(partial: str, user_text: str, handoff_tools: Collection[str] = (), *, flat: bool = True) -> bool:
    """Whether a router reply still being written can no longer become a call that `grounded` takes:
    a hand-off the user did not ask for, or an argument whose digits so far are not in the user's
    words (no continuation can put them there). The router then stops early instead of writing out
    a call that would be refused (the 0.5B model writes `lookup_order("12345")` for many questions
    that name no order: 1.5 s of tokens). `flat`: arguments beside "tool" (see `router_schema`)."""
    m = _TOOL_NAME.search(partial)
    if m is None:
        return False
    if m.group(1) in handoff_tools and not asks_for_person(user_text):
        return True
    said = said_digits(user_text)
    return any(made_up(v, said) for v in _argument_values(partial, flat))


def readable(content: str) -> str:
    """A JSON tool result as plain `key: value` lines (small models copy JSON syntax they see)."""
    try:
        data = loads_json(content)
    except (json.JSONDecodeError, TypeError):
        return content
    if isinstance(data, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {readable(json.dumps(v)) if isinstance(v, dict | list) else v}"
                         for k, v in data.items())
    if isinstance(data, list):
        return "; ".join(readable(json.dumps(v)) if isinstance(v, dict | list) else str(v) for v in data)
    return str(data)


def facts_message(call: ToolCall, content: str, *, ok: bool = True) -> ChatMessage:
    """The system message that carries a tool's result into the answer step."""
    if not ok:
        return ChatMessage("system", f"The {call.name.replace('_', ' ')} system could not answer. Apologise briefly.")
    return ChatMessage(
        "system",
        f"Answer the user's next message using only this information from the {call.name.replace('_', ' ')} "
        f'system: "{readable(content)}". Say it in one short spoken sentence, in plain words.',
    )
