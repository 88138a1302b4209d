"""External control commands (wire messages, pydantic): MQTT, the preview page, LiveKit data.

Unknown fields are rejected; sizes are bounded. `parse_command(kind, data)` validates one.
`loads_json` is `json.loads` for anything a remote party or an LLM wrote: nesting too deep for the
decoder is a `json.JSONDecodeError` like any other bad JSON, never a RecursionError.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from flowact.types import AgentState

__all__ = [
    "Command",
    "EmotionCommand",
    "GestureCommand",
    "InterruptCommand",
    "MAX_COMMAND_BYTES",
    "SayCommand",
    "StateCommand",
    "loads_json",
    "parse_command",
]

MAX_COMMAND_BYTES = 16 * 1024


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SayCommand(_Cmd):
    """Speak this text (may contain intent tags). `interrupt` cuts the current turn first."""

    kind: Literal["say"] = "say"
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    interrupt: bool = False


class EmotionCommand(_Cmd):
    kind: Literal["emotion"] = "emotion"
    name: Annotated[str, Field(min_length=1, max_length=32)]
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    duration: Annotated[float, Field(gt=0.0, le=600.0)] | None = None


class GestureCommand(_Cmd):
    kind: Literal["gesture"] = "gesture"
    name: Annotated[str, Field(min_length=1, max_length=32)]
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class InterruptCommand(_Cmd):
    kind: Literal["interrupt"] = "interrupt"


class StateCommand(_Cmd):
    kind: Literal["state"] = "state"
    state: AgentState


Command = Annotated[
    SayCommand | EmotionCommand | GestureCommand | InterruptCommand | StateCommand,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(kind: str, data: dict[str, object]) -> Command:
    """Validate a command of `kind` (the topic's last segment); raises pydantic.ValidationError."""
    payload = dict(data)
    if payload.setdefault("kind", kind) != kind:
        raise ValueError(f"command kind {payload['kind']!r} does not match topic {kind!r}")
    return _ADAPTER.validate_python(payload)


def loads_json(data: str | bytes | bytearray) -> Any:
    """`json.loads` for untrusted input; raises json.JSONDecodeError (a ValueError) for bad JSON,
    including nesting deeper than the decoder's recursion limit (`[[[[...`)."""
    try:
        return json.loads(data)
    except RecursionError:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None
