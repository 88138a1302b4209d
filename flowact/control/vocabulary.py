"""The intent-tag vocabulary: the fixed set of emotions and gestures a face understands.

Emotions (held until another emotion; map onto `flowact.types.EXPRESSIONS`, `neutral` = all zero):
  neutral, happy, sad, surprised, concerned, thinking, angry
Gestures / events (one-shot, transient; become `ControlEvent`s): nod, shake, smile, frown,
  raise_brows, blink, wink, look_away, lean_in.

A tag spec is `name`, `name:intensity`, `emotion:name[:intensity]` or `gesture:name[:intensity]`
(case and surrounding spaces ignored, intensity 0..1); `parse_tag` validates one from any source
(LLM text, a tool call, an MQTT or RPC command). The streaming parser that strips tags from LLM text
is `agent.intents.IntentParser`.
"""

from __future__ import annotations

import logging
import re

from flowact.types import EXPRESSIONS, IntentTag

__all__ = [
    "EMOTIONS",
    "GESTURES",
    "MAX_TAG_CHARS",
    "VOCABULARY",
    "emotion_index",
    "parse_tag",
    "warn_dropped_tag",
]

log = logging.getLogger("flowact.control")

EMOTIONS: tuple[str, ...] = ("neutral", *EXPRESSIONS)
"""Emotion tags; every name but `neutral` is a channel of `flowact.types.EXPRESSIONS`."""
GESTURES: tuple[str, ...] = (
    "nod", "shake", "smile", "frown", "raise_brows", "blink", "wink", "look_away", "lean_in", "shrug",
)
"""One-shot gesture/event tags (become `ControlEvent`s)."""
VOCABULARY: dict[str, str] = {
    "neutral": "relax the face (clears any emotion)",
    "happy": "warm, pleased face",
    "sad": "sad face",
    "surprised": "raised brows, wide eyes",
    "concerned": "worried, empathetic face",
    "thinking": "pensive face",
    "angry": "stern, annoyed face",
    "nod": "nod (yes, agreement)",
    "shake": "head shake (no, disagreement)",
    "smile": "a brief smile",
    "frown": "a brief frown",
    "raise_brows": "raise the eyebrows (emphasis, question)",
    "blink": "blink",
    "wink": "wink",
    "look_away": "glance aside",
    "lean_in": "lean in, attentive",
    "shrug": "a shrug (not sure, who knows)",
}
"""Every tag name with a short description (prompt snippets and tool schemas are generated from it)."""
MAX_TAG_CHARS = 40
"""Longest tag spec (characters inside the brackets)."""
_NAME = re.compile(r"[a-z_]{2,20}")
_NUMBER = re.compile(r"\d{1,3}(\.\d{0,6})?|\.\d{1,6}")


def emotion_index(name: str) -> int | None:
    """Column of an emotion tag in `flowact.types.EXPRESSIONS` (None for `neutral` and gestures)."""
    return EXPRESSIONS.index(name) if name in EXPRESSIONS else None


def warn_dropped_tag(spec: str, why: str) -> None:
    """Log one dropped tag (escaped and truncated: the text may be adversarial)."""
    log.warning("dropping intent tag [%s]: %s", spec[:MAX_TAG_CHARS].encode("unicode_escape").decode(), why)


def _reject(spec: str, why: str, warn: bool) -> None:
    if warn:
        warn_dropped_tag(spec, why)


def parse_tag(text: str, source: str = "llm", *, char_offset: int = 0, warn: bool = True) -> IntentTag | None:
    """Parse one tag spec (`smile`, `[smile:0.6]`, `emotion:sad`, `emotion:sad:0.4`) from any source.

    Returns None and logs a warning (unless `warn=False`) for anything outside the vocabulary or malformed.
    """
    spec = text.strip()
    if spec.startswith("[") and spec.endswith("]"):
        spec = spec[1:-1]
    if len(spec) > MAX_TAG_CHARS:
        _reject(spec, "too long", warn)
        return None
    parts = [p.strip() for p in spec.lower().split(":")]
    kind = ""
    if parts[0] in ("emotion", "gesture"):
        kind, parts = parts[0], parts[1:]
    if not parts or len(parts) > 2 or not _NAME.fullmatch(parts[0]) or parts[0] not in VOCABULARY:
        _reject(spec, "unknown or malformed", warn)
        return None
    name = parts[0]
    if (kind == "emotion" and name not in EMOTIONS) or (kind == "gesture" and name not in GESTURES):
        _reject(spec, f"{name!r} is not an {kind}", warn)
        return None
    intensity = 1.0
    if len(parts) == 2:
        if not _NUMBER.fullmatch(parts[1]):
            _reject(spec, "intensity is not a number", warn)
            return None
        intensity = float(parts[1])
        if not 0.0 <= intensity <= 1.0:
            _reject(spec, "intensity outside 0..1", warn)
            return None
    return IntentTag(name=name, intensity=intensity, char_offset=char_offset, source=source)
