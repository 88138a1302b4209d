"""MQTT commands driving a real AgentSession (espeak TTS, portrait generator, null sink) on mosquitto."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from agent.config import parse_config
from agent.errors import ConfigError
from agent.registry import load_plugin
from agent.session import AgentSession
from flowact.types import EXPRESSIONS, AgentState
from plugins.control_mqtt import MqttControl
from tests.fixtures.mosquitto import Mosquitto, mosquitto_fixture  # noqa: F401
from tests.fixtures.session_parts import Recorder
from tests.plugins.test_mqtt_control import ROOT, peer

pytestmark = pytest.mark.timeout(120)
HAPPY = EXPRESSIONS.index("happy")


def needs_tts() -> None:
    try:
        load_plugin("tts", "espeak")
    except ConfigError as e:
        pytest.skip(f"needs the espeak TTS plugin: {e}")


async def until(pred: Callable[[], object], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def rms(c: object) -> float:
    return float(np.sqrt(np.mean(c.audio.astype(np.float32) ** 2)))  # type: ignore[attr-defined]


async def test_mqtt_say_and_emotion_drive_the_avatar_across_a_broker_restart(mosquitto: Mosquitto) -> None:
    needs_tts()
    cfg = parse_config({
        "session": {"width": 256, "height": 256},
        "tts": {"type": "espeak"},
        "generator": {"type": "portrait"},
        "sink": {"type": "null"},
        "control": {"type": "mqtt", "port": mosquitto.port, "agent": "test-agent", "reconnect_min_s": 0.1},
    }, environ={})
    session = AgentSession(cfg)
    rec = Recorder()
    session.add_observer(rec)
    async with session:
        control = session.c.control
        assert isinstance(control, MqttControl) and control.connected.is_set()
        async with peer(mosquitto) as op:
            await op.cmd("emotion", {"name": "happy", "intensity": 0.9})
            await op.cmd("say", {"text": "Hello! I am the avatar, speaking because you asked me to."}, qos=2)
            await until(lambda: AgentState.SPEAKING in rec.states)
            await session.wait_idle(timeout=60)
            speaking = [c for c in rec.controls if c.state == AgentState.SPEAKING]
            assert len(speaking) >= 5 and max(rms(c) for c in speaking) > 500  # the speech rides along
            assert max(float(c.expressions[:, HAPPY].max()) for c in speaking) > 0.3  # the requested emotion
            await op.wait(lambda: len(op.events("command")) >= 2 and op.events("transcript"))
            assert [e["payload"]["kind"] for e in op.events("command")][:2] == ["emotion", "say"]
            agent_said = [e["payload"]["text"] for e in op.events("transcript") if e["payload"]["role"] == "agent"]
            assert agent_said == ["Hello! I am the avatar, speaking because you asked me to."]
            await op.wait(lambda: op.on("telemetry"))  # the session's metrics, every second
            assert b'"fps"' in op.on("telemetry")[-1] and b'"state"' in op.on("telemetry")[-1]
            # garbage on a command topic is reported and the session carries on
            await op.cmd("say", {"text": "x", "exec": "rm -rf /"})
            await op.wait(lambda: op.events("command_rejected"))
        # the broker goes away mid-session and comes back on the same port
        await asyncio.to_thread(mosquitto.stop)
        await until(lambda: not control.connected.is_set(), within=10)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(control.connected.wait(), 10)
        n_before = len(rec.controls)
        async with peer(mosquitto) as op:
            await op.wait(lambda: op.on("status") == [b"online"])
            await op.cmd("say", {"text": "I am back after the broker restart."})
            await until(lambda: any(c.state == AgentState.SPEAKING for c in rec.controls[n_before:]))
            await session.wait_idle(timeout=60)
            await op.wait(lambda: any(e["payload"].get("text") == "I am back after the broker restart."
                                      for e in op.events("transcript")))
        assert max(rms(c) for c in rec.controls[n_before:]) > 500
        assert control.connections == 2
    assert session.turn_count == 2
    assert ROOT == control.root
