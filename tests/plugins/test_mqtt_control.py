"""MqttControl against a real Mosquitto broker (tests/fixtures/mosquitto.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.commands import MAX_COMMAND_BYTES, EmotionCommand, SayCommand, StateCommand
from flowact.types import AgentState
from plugins.control_mqtt import MqttControl, MqttControlConfig
from tests.fixtures.mosquitto import ACL_USERS, Mosquitto, mosquitto_fixture, mosquitto_secured_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(60)
ROOT = "flowact/test-agent"


def control_for(broker: Mosquitto, **kw: Any) -> MqttControl:
    return MqttControl(MqttControlConfig(port=broker.port, agent="test-agent", reconnect_min_s=0.1, **kw))


class Peer:
    """An operator's MQTT client: publishes commands, records what the agent publishes."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task = asyncio.create_task(self._collect(), name="peer-collect")

    async def _collect(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append((m.topic.value, payload, m.retain))

    def on(self, suffix: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == f"{ROOT}/{suffix}"]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        evs = [json.loads(p) for p in self.on("events")]
        return [e for e in evs if kind is None or e["kind"] == kind]

    async def wait(self, pred: Any, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not pred():
            assert time.monotonic() < deadline, f"timed out; got {self.messages[-10:]}"
            await asyncio.sleep(0.02)

    async def cmd(
        self, kind: str, payload: bytes | str | dict[str, Any], *, qos: int = 1, retain: bool = False
    ) -> None:
        body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        await self.client.publish(f"{ROOT}/cmd/{kind}", body, qos=qos, retain=retain)


@asynccontextmanager
async def peer(broker: Mosquitto, user: str | None = None, **kw: Any) -> AsyncIterator[Peer]:
    import ssl

    tls = ssl.create_default_context(cafile=str(broker.ca_file)) if broker.tls else None
    password = ACL_USERS.get(user or "") if user else None
    async with aiomqtt.Client(broker.host, broker.port, username=user, password=password, tls_context=tls,
                              **kw) as client:
        await client.subscribe(f"{ROOT}/#", qos=1)
        p = Peer(client)
        try:
            yield p
        finally:
            p._task.cancel()
            await asyncio.gather(p._task, return_exceptions=True)


async def next_command(ctl: MqttControl, within: float = 5.0) -> Any:
    it = ctl.commands()
    try:
        return await asyncio.wait_for(anext(it), within)
    finally:
        await it.aclose()


async def test_commands_arrive_validated_and_status_is_retained(mosquitto: Mosquitto) -> None:
    ctl = control_for(mosquitto)
    await ctl.start()
    assert ctl.connected.is_set()
    async with peer(mosquitto) as op:  # subscribes after the agent: sees the retained status
        await op.wait(lambda: op.on("status") == [b"online"])
        assert op.messages[0][2] is True  # retained
        await op.cmd("say", {"text": "Hello [smile] there", "interrupt": True}, qos=2)
        cmd = await next_command(ctl)
        assert cmd == SayCommand(text="Hello [smile] there", interrupt=True)
        await op.cmd("emotion", {"name": "happy", "intensity": 0.7})
        await op.cmd("state", {"state": "listening"})
        assert await next_command(ctl) == EmotionCommand(name="happy", intensity=0.7)
        assert await next_command(ctl) == StateCommand(state=AgentState.LISTENING)
        await ctl.publish_telemetry({"fps": 25.0, "frames": 100})
        await ctl.publish_event("turn", {"turn": 1, "first_frame": 0.4})
        await op.wait(lambda: op.on("telemetry") and op.events("turn"))
        assert json.loads(op.on("telemetry")[0]) == {"fps": 25.0, "frames": 100}
        assert op.events("turn")[0]["payload"] == {"turn": 1, "first_frame": 0.4}
        await ctl.aclose()  # a clean close says offline (retained) itself
        await op.wait(lambda: op.on("status")[-1:] == [b"offline"])
    assert ctl.accepted == 3 and ctl.rejected == 0


async def test_bad_commands_are_rejected_and_reported(mosquitto: Mosquitto) -> None:
    ctl = control_for(mosquitto)
    bad: list[tuple[str, bytes | str | dict[str, Any], str]] = [
        ("say", b"{not json", "invalid_json"),
        ("say", b"\xff\xfe\x00", "invalid_json"),
        ("say", b"[1, 2]", "invalid_json"),
        ("say", {"text": "x" * (MAX_COMMAND_BYTES + 10)}, "too_large"),
        ("say", {"text": "hi", "rm": "-rf"}, "invalid_command"),  # unknown field
        ("say", {"text": ""}, "invalid_command"),
        ("say", {"text": "hi", "kind": "emotion"}, "invalid_command"),  # kind must match topic
        ("emotion", {"name": "happy", "intensity": 7}, "invalid_command"),
        ("state", {"state": "dancing"}, "invalid_command"),
        ("dance", {"name": "x"}, "unknown_command"),
    ]
    try:
        async with peer(mosquitto) as op:
            # a retained command would replay on every (re)subscription: refused
            await op.cmd("say", {"text": "replayed"}, retain=True)
            await ctl.start()
            await op.wait(lambda: len(op.events("command_rejected")) == 1)
            await op.client.publish(f"{ROOT}/cmd/say", b"", retain=True)  # clear the retained message
            for kind, payload, _ in bad:
                await op.cmd(kind, payload)
            await op.wait(lambda: len(op.events("command_rejected")) == len(bad) + 1)
            reasons = [e["payload"]["reason"] for e in op.events("command_rejected")]
            assert reasons == ["retained"] + [r for _, _, r in bad]
            unknown = op.events("command_rejected")[5]["payload"]
            assert "rm" in unknown["error"] and unknown["topic"] == f"{ROOT}/cmd/say"
            # nothing reached the session, and the channel still obeys a good command
            assert ctl._commands.empty()
            await op.cmd("say", {"text": "still alive"})
            assert await next_command(ctl) == SayCommand(text="still alive")
    finally:
        await ctl.aclose()
    assert ctl.rejected == len(bad) + 1 and ctl.accepted == 1


async def test_reconnects_after_broker_restart_and_resubscribes(mosquitto: Mosquitto) -> None:
    ctl = control_for(mosquitto)
    await ctl.start()
    try:
        await asyncio.to_thread(mosquitto.stop)
        deadline = time.monotonic() + 5
        while ctl.connected.is_set():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await ctl.publish_event("error", {"while": "offline"})  # buffered until the link is back
        for i in range(5):
            await ctl.publish_telemetry({"snapshot": i})  # only the newest survives the outage
        await asyncio.sleep(0.5)  # a few failed attempts with backoff
        mark = mosquitto.log_size()
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(ctl.connected.wait(), 10)
        assert ctl.connections == 2
        async with peer(mosquitto) as op:
            await op.wait(lambda: op.on("status") == [b"online"])
            await op.cmd("say", {"text": "after restart"})
            assert await next_command(ctl) == SayCommand(text="after restart")
        # what was published offline reached the broker after the reconnect (the broker's own log)
        mine = f"Received PUBLISH from {ctl.client_id}"
        received = [ln for ln in mosquitto.log_text(mark).splitlines() if mine in ln]
        assert sum(f"'{ROOT}/events'" in ln for ln in received) == 1
        assert sum(f"'{ROOT}/telemetry'" in ln for ln in received) == 1
        assert not ctl._out and ctl.dropped_outgoing == 0
    finally:
        await ctl.aclose()


async def test_last_will_says_offline_when_the_agent_dies(mosquitto: Mosquitto) -> None:
    script = (
        "import asyncio, sys\n"
        "from plugins.control_mqtt import MqttControl, MqttControlConfig\n"
        "async def main():\n"
        f"    c = MqttControl(MqttControlConfig(port={mosquitto.port}, agent='test-agent', keepalive_s=5))\n"
        "    await c.start(); print('ready', c.connected.is_set(), flush=True); await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"ready True"
        async with peer(mosquitto) as op:
            await op.wait(lambda: op.on("status") == [b"online"])
            proc.kill()  # no clean disconnect: the broker publishes the will
            await op.wait(lambda: op.on("status")[-1:] == [b"offline"])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_acl_and_credentials(mosquitto_secured: Mosquitto, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    broker = mosquitto_secured
    assert broker.ca_file is not None
    monkeypatch.setenv("FLOWACT_MQTT_TLS", "1")
    monkeypatch.setenv("FLOWACT_MQTT_CA_FILE", str(broker.ca_file))
    # wrong password: refused, retried in the background, the secret never logged
    monkeypatch.setenv("FLOWACT_MQTT_USERNAME", "agent")
    monkeypatch.setenv("FLOWACT_MQTT_PASSWORD", "wrong-secret-123")
    caplog.set_level(logging.DEBUG)
    bad = control_for(broker, connect_timeout_s=1.0)
    await bad.start()
    assert not bad.connected.is_set() and bad.connections == 0
    await bad.aclose()
    assert "wrong-secret-123" not in caplog.text and "authoriz" in caplog.text.lower()

    monkeypatch.setenv("FLOWACT_MQTT_PASSWORD", ACL_USERS["agent"])
    ctl = control_for(broker)
    await ctl.start()
    try:
        assert ctl.connected.is_set()
        with pytest.raises(aiomqtt.MqttError):  # anonymous clients are refused
            async with peer(broker):
                pass
        async with peer(broker, "viewer") as viewer, peer(broker, "operator") as op:
            await viewer.wait(lambda: viewer.on("status") == [b"online"])
            await viewer.cmd("say", {"text": "from the viewer"})  # ACL: viewer may not write cmd/#
            await op.cmd("say", {"text": "from the operator"})
            assert await next_command(ctl) == SayCommand(text="from the operator")
            await asyncio.sleep(0.3)
            assert ctl._commands.empty() and ctl.accepted == 1
            await ctl.publish_event("turn", {"turn": 1})
            await viewer.wait(lambda: viewer.events("turn"))  # the viewer may read events
    finally:
        await ctl.aclose()
    assert ACL_USERS["agent"] not in caplog.text


async def test_broker_down_at_start_is_not_fatal_and_floods_are_bounded(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # not started yet
    ctl = control_for(broker, connect_timeout_s=0.3, command_queue=2)
    try:
        await ctl.start()  # returns after the timeout and keeps trying in the background
        assert not ctl.connected.is_set()
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(ctl.connected.wait(), 10)
        async with peer(broker) as op:
            for i in range(5):  # nobody consumes: the queue holds 2, the rest are refused as busy
                await op.cmd("say", {"text": f"flood {i}"})
            await op.wait(lambda: len(op.events("command_rejected")) == 3)
            assert {e["payload"]["reason"] for e in op.events("command_rejected")} == {"busy"}
            assert await next_command(ctl) == SayCommand(text="flood 0")
            assert await next_command(ctl) == SayCommand(text="flood 1")
    finally:
        await ctl.aclose()
        broker.stop()
