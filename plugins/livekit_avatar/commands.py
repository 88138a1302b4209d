"""Expressions and gestures for the avatar worker over LiveKit RPC (`flowact.command`).

livekit-agents' avatar protocol carries audio only, so an agent's intent (smile, nod, concern) has no
way to the face. The avatar therefore serves one RPC method, `flowact.command`, taking the same JSON
commands as MQTT and the preview page (`flowact.control.commands`): `{"kind": "emotion", "name":
"happy", "intensity": 0.8, "duration": 3}` or `{"kind": "gesture", "name": "nod"}`. Names come from
the intent vocabulary (`flowact.control.vocabulary`); an emotion's duration is media time. Only the
agent the avatar serves may call it. The agent side calls `send_avatar_command(room,
"flowact-avatar", "emotion", "happy")`, e.g. from a livekit-agents tool.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Literal

from livekit import rtc
from pydantic import ValidationError

from flowact.clock import Clock, RealClock
from flowact.control.commands import MAX_COMMAND_BYTES, EmotionCommand, loads_json, parse_intent_command
from flowact.control.vocabulary import parse_tag
from flowact.types import IntentTag

__all__ = ["COMMAND_METHOD", "AvatarCommandError", "apply_command_payload", "is_served_agent",
           "register_command_rpc", "send_avatar_command"]

log = logging.getLogger(__name__)
COMMAND_METHOD = "flowact.command"
ApplyTag = Callable[[IntentTag, float | None], None]  # (tag, emotion duration in s or None)


class AvatarCommandError(ValueError):
    """A command the avatar refuses; its message says why (sent back to the caller)."""


def apply_command_payload(payload: str, apply: ApplyTag) -> str:
    """Validate one JSON command and apply it; returns the tag applied (`happy:0.8`)."""
    if len(payload.encode()) > MAX_COMMAND_BYTES:
        raise AvatarCommandError(f"command larger than {MAX_COMMAND_BYTES} bytes")
    try:
        data = loads_json(payload)
    except json.JSONDecodeError as e:
        raise AvatarCommandError(f"command is not JSON: {e.msg} at {e.pos}") from None
    if not isinstance(data, dict):
        raise AvatarCommandError("command must be a JSON object")
    kind = data.get("kind")
    if kind not in ("emotion", "gesture"):
        raise AvatarCommandError(f"kind must be 'emotion' or 'gesture', got {kind!r} (interrupts arrive "
                                 "as lk.clear_buffer; speech as the agent's audio)")
    try:
        cmd = parse_intent_command(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"][1:])  # loc[0] is the command kind
        raise AvatarCommandError(f"{where}: {err['msg']}" if where else err["msg"]) from None
    spec = f"{cmd.kind}:{cmd.name}" + ("" if cmd.intensity == 1.0 else f":{cmd.intensity}")
    tag = parse_tag(spec, source="command", warn=False)
    if tag is None:
        other = "gesture" if cmd.kind == "emotion" else "emotion"
        if parse_tag(f"{other}:{cmd.name}", warn=False) is not None:
            raise AvatarCommandError(f"{cmd.name!r} is a {other}, not an {cmd.kind}")
        raise AvatarCommandError(f"unknown {cmd.kind} {cmd.name!r}")
    apply(tag, cmd.duration if isinstance(cmd, EmotionCommand) else None)
    return f"{tag.name}:{tag.intensity:g}"


def is_served_agent(room: rtc.Room, identity: str, sender_identity: str | None) -> bool:
    """Is `identity` the agent this avatar serves: `sender_identity`, else any agent participant."""
    if sender_identity is not None:
        return identity == sender_identity
    p = room.remote_participants.get(identity)
    return p is not None and p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


def register_command_rpc(room: rtc.Room, apply: ApplyTag, *, sender_identity: str | None) -> None:
    """Serve `flowact.command` on the avatar: from `sender_identity` (else from any agent participant)."""
    refusals = 0

    def refuse(caller: str, why: str) -> rtc.RpcError:
        nonlocal refusals
        refusals += 1
        if refusals <= 10 or refusals % 100 == 0:  # a spamming participant cannot flood the log
            log.warning("flowact.command from %r refused (%d so far): %s", caller, refusals, why)
        return rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, why)

    def handler(data: rtc.RpcInvocationData) -> str:
        if not is_served_agent(room, data.caller_identity, sender_identity):
            raise refuse(data.caller_identity, "caller is not this avatar's agent")
        try:
            return apply_command_payload(data.payload, apply)
        except AvatarCommandError as e:
            raise refuse(data.caller_identity, str(e)) from None

    room.local_participant.register_rpc_method(COMMAND_METHOD, handler)


async def send_avatar_command(room: rtc.Room, avatar_identity: str, kind: Literal["emotion", "gesture"],
                              name: str, *, intensity: float = 1.0, duration: float | None = None,
                              timeout_s: float = 5.0, clock: Clock | None = None) -> str:
    """Agent side: ask the avatar for an expression or gesture; returns the tag it applied and raises
    `rtc.RpcError` when refused. An avatar that is still starting (method not registered yet) is
    retried until `timeout_s`."""
    body: dict[str, object] = {"kind": kind, "name": name, "intensity": intensity}
    if duration is not None:
        body["duration"] = duration
    clock = clock or RealClock()
    deadline = clock.now() + timeout_s
    while True:
        try:
            return await room.local_participant.perform_rpc(
                destination_identity=avatar_identity, method=COMMAND_METHOD, payload=json.dumps(body),
                response_timeout=max(1.0, deadline - clock.now()))
        except rtc.RpcError as e:
            if e.code != rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD or clock.now() > deadline - 0.2:
                raise
        await clock.sleep(0.2)
