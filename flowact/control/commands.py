"""Emotion and gesture commands: the JSON messages that set a face's expression from outside.

`{"kind": "emotion", "name": "happy", "intensity": 0.8, "duration": 3}` or
`{"kind": "gesture", "name": "nod"}`; names come from `flowact.control.vocabulary`. The agent's
command set (`agent.commands`: MQTT, the preview page) extends these; the LiveKit avatar worker
takes exactly these. Unknown fields are rejected; sizes are bounded.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "MAX_COMMAND_BYTES",
    "CommandModel",
    "EmotionCommand",
    "GestureCommand",
    "IntentCommand",
    "loads_json",
    "parse_intent_command",
]

MAX_COMMAND_BYTES = 16 * 1024
"""Largest accepted command payload (bytes of JSON)."""


class CommandModel(BaseModel):
    """Base of every command message: frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmotionCommand(CommandModel):
    kind: Literal["emotion"] = "emotion"
    name: Annotated[str, Field(min_length=1, max_length=32)]
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    duration: Annotated[float, Field(gt=0.0, le=600.0)] | None = None


class GestureCommand(CommandModel):
    kind: Literal["gesture"] = "gesture"
    name: Annotated[str, Field(min_length=1, max_length=32)]
    intensity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


IntentCommand = Annotated[EmotionCommand | GestureCommand, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[IntentCommand] = TypeAdapter(IntentCommand)


def parse_intent_command(data: dict[str, object]) -> EmotionCommand | GestureCommand:
    """Validate an emotion or gesture command (raises pydantic.ValidationError)."""
    return _ADAPTER.validate_python(data)


def loads_json(data: str | bytes | bytearray) -> Any:
    """`json.loads` for untrusted input; raises json.JSONDecodeError (a ValueError) for bad JSON,
    including nesting deeper than the decoder's recursion limit (`[[[[...`)."""
    try:
        return json.loads(data)
    except RecursionError:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply", text[:64], 0) from None
