"""External control commands (wire messages, pydantic): MQTT, the preview page, LiveKit data.

Unknown fields are rejected; sizes are bounded. `parse_command(kind, data)` validates one. The
emotion and gesture commands are flowact's (`flowact.control.commands`), re-exported here.
`loads_json` is `json.loads` for anything a remote party or an LLM wrote: nesting too deep for the
decoder is a `json.JSONDecodeError` like any other bad JSON, never a RecursionError.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from flowact.control.commands import MAX_COMMAND_BYTES, EmotionCommand, GestureCommand, loads_json
from flowact.control.commands import CommandModel as _Cmd
from flowact.errors import InputError
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

class SayCommand(_Cmd):
    """Speak this text (may contain intent tags). `interrupt` cuts the current turn first."""

    kind: Literal["say"] = "say"
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    interrupt: bool = False


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
    """Validate a command of `kind` (the topic's last segment).

    Raises pydantic.ValidationError for a malformed payload, InputError when `kind` disagrees.
    """
    payload = dict(data)
    if payload.setdefault("kind", kind) != kind:
        raise InputError(f"command kind {payload['kind']!r} does not match its topic's {kind!r} "
                         f"(send it on the {payload['kind']!r} topic or fix `kind`)")
    return _ADAPTER.validate_python(payload)

