"""Property-based tests of remote messages: MQTT command payloads, the avatar's `flowact.command` RPC,
LiveKit legacy chat packets, control chunks on the wire, and the preview page's websocket (a real
aiohttp server and client). For any bytes a remote party sends: a validated command or a dropped
message with a reason, never an exception; queues, outboxes and log lines stay bounded."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands import MAX_COMMAND_BYTES, parse_command
from flowact.errors import InputError
from flowact.wire import control_from_json
from plugins.control_mqtt import MqttControl
from plugins.control_mqtt.config import MqttControlConfig
from plugins.preview_web import PreviewConfig, PreviewSink
from plugins.preview_web.wire import HEADER, MIC
from plugins.transport_livekit.sink import chat_text


def _avatar_commands() -> ModuleType:
    """plugins/livekit_avatar/commands.py alone: the package imports livekit-agents (its own venv), this
    module needs only livekit.rtc, which the main venv has."""
    path = Path(__file__).resolve().parents[1] / "plugins" / "livekit_avatar" / "commands.py"
    spec = importlib.util.spec_from_file_location("livekit_avatar_commands_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AVATAR = _avatar_commands()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=16,
)
KINDS = st.sampled_from(["say", "emotion", "gesture", "interrupt", "state", "exec", "", "say/../x", "SAY"])
COMMAND_LIKE = st.builds(
    lambda kind, extra: {"kind": kind, **extra} if kind else extra,
    st.one_of(st.none(), KINDS),
    st.dictionaries(st.sampled_from(["text", "interrupt", "name", "intensity", "duration", "state", "x"]),
                    JSON_VALUES, max_size=4),
)
# raw payloads: JSON that looks like a command, any JSON, nesting bombs, big blobs, invalid UTF-8
PAYLOADS = st.one_of(
    COMMAND_LIKE.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.integers(1, MAX_COMMAND_BYTES // 2).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, MAX_COMMAND_BYTES // 5).map(lambda n: b'{"a":' * n),
    st.integers(MAX_COMMAND_BYTES - 4, MAX_COMMAND_BYTES + 4).map(lambda n: b'{"text":"' + b"x" * n + b'"}'),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(messages=st.lists(st.tuples(KINDS, PAYLOADS, st.booleans()), min_size=1, max_size=40))
def test_mqtt_commands_are_accepted_or_rejected_with_a_reason(
    messages: list[tuple[str, bytes, bool]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    ctl = MqttControl(MqttControlConfig(command_queue=4, outgoing_queue=16))
    with caplog.at_level(logging.WARNING, logger="plugins.control_mqtt"):
        for kind, payload, retain in messages:
            ctl._handle(f"{ctl.root}/cmd/{kind}", payload, retain=retain)
    nonempty = sum(1 for _, p, _ in messages if p)
    assert ctl.accepted + ctl.rejected == nonempty
    assert ctl._commands.qsize() <= 4 and len(ctl._out) <= 16  # nothing grows
    for item in ctl._out:
        event = json.loads(item.payload)
        assert event["kind"] == "command_rejected" and len(item.payload) < 4096
    assert len(caplog.records) <= 20 + ctl.rejected // 1000 + 1


def test_mqtt_rejection_floods_log_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    ctl = MqttControl(MqttControlConfig())
    with caplog.at_level(logging.WARNING, logger="plugins.control_mqtt"):
        for _ in range(5000):
            ctl._handle(f"{ctl.root}/cmd/say", b"not json")
    assert ctl.rejected == 5000
    assert len(caplog.records) <= 30


@FUZZ
@given(kind=KINDS, data=COMMAND_LIKE)
def test_parse_command_raises_only_validation_errors(kind: str, data: dict[str, object]) -> None:
    try:
        cmd = parse_command(kind, data)
    except ValueError:  # pydantic.ValidationError is a ValueError
        return
    except InputError as e:  # a kind that disagrees with its topic, said clearly
        assert "does not match" in str(e)
        return
    assert cmd.kind == kind


@FUZZ
@given(payload=st.one_of(PAYLOADS.map(lambda b: b.decode("utf-8", "replace")), st.text(max_size=300)))
def test_avatar_command_rpc_applies_a_vocabulary_tag_or_refuses(payload: str) -> None:
    applied = []
    try:
        result = AVATAR.apply_command_payload(payload, lambda tag, duration: applied.append((tag, duration)))
    except AVATAR.AvatarCommandError as e:
        assert not applied and len(str(e)) < 1000
    else:
        assert len(applied) == 1 and result.startswith(applied[0][0].name)


@FUZZ
@given(data=st.one_of(PAYLOADS, st.dictionaries(st.text(max_size=8), JSON_VALUES).map(
    lambda d: json.dumps(d).encode())))
def test_livekit_chat_packets_give_text_or_nothing(data: bytes) -> None:
    text = chat_text(data)
    assert text is None or (isinstance(text, str) and text == text.strip())


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(PAYLOADS.map(lambda b: b.decode("utf-8", "replace")), st.text(max_size=500)))
def test_control_chunk_json_is_a_chunk_or_a_value_error(text: str) -> None:
    try:
        control_from_json(text)
    except ValueError as e:
        assert str(e).startswith("invalid control chunk")


# --- the preview page's websocket, end to end --------------------------------------------------------

WS_MESSAGES = st.one_of(
    st.text(max_size=300),
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["text", "x"]), "text": JSON_VALUES}).map(json.dumps),
    st.integers(1, 20_000).map(lambda n: "[" * n),
    st.binary(max_size=300),
    st.builds(lambda kind, rate, pts, body: HEADER.pack(kind, rate, pts) + body,
              st.sampled_from([MIC, MIC, 1, 2, 0, 255]), st.sampled_from([0, 7999, 8000, 16000, 44100, 96001]),
              st.floats(allow_nan=True), st.binary(max_size=2000)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(WS_MESSAGES, min_size=1, max_size=25))
def test_preview_websocket_survives_any_message(messages: list[str | bytes]) -> None:
    asyncio.run(_preview_session(messages))


async def _preview_session(messages: list[str | bytes]) -> None:
    sink = PreviewSink(PreviewConfig(port=0, microphone=True, text_queue=4, mic_queue=10))
    await sink.start(width=64, height=48, fps=25, sample_rate=24000)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sink.url + "ws") as ws:
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
            for m in messages:
                await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_str(m))
            # the connection is still served: a valid message still gets through or gets its notice
            await ws.send_str(json.dumps({"type": "text", "text": "still here"}))
            await ws.send_str("a final bad message")
            while True:
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                if json.loads(msg.data).get("text") == "ignored a message that is not JSON":
                    break
            assert not ws.closed
        assert sink._texts.qsize() <= 4 and sink._mic.qsize() <= 10
    finally:
        await sink.aclose()
