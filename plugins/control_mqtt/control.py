"""MqttControl: commands in, telemetry/events out, over an MQTT broker (aiomqtt).

Topics (root = `<prefix>/<agent>[/<session>]`, default `flowact/<agent>`):

| topic                    | dir | QoS | retain | payload                                              |
| ------------------------ | --- | --- | ------ | ---------------------------------------------------- |
| root/cmd/say             | in  | 2*  | no     | `{"text": "...", "interrupt": false}`                |
| root/cmd/emotion         | in  | 2*  | no     | `{"name": "happy", "intensity": 0.8, "duration": 3}` |
| root/cmd/gesture         | in  | 2*  | no     | `{"name": "nod", "intensity": 1.0}`                  |
| root/cmd/interrupt       | in  | 2*  | no     | `{}`                                                 |
| root/cmd/state           | in  | 2*  | no     | `{"state": "listening"}`                             |
| root/telemetry           | out | 0   | no     | metrics snapshot every second (lossy by design)      |
| root/events              | out | 1   | no     | `{"kind", "seq", "payload"}`: turns, transcripts, .. |
| root/status              | out | 1   | yes    | `online` / `offline` (also the last will)            |

Events include turns, transcripts, state changes, errors and `command_rejected`. The last will makes
the broker publish `offline` itself when the agent crashes or loses its link.

(*) The subscription is granted QoS 2, so each publisher picks its delivery guarantee: QoS 2 for
exactly-once `say`, QoS 1 (at least once: a duplicate is possible after a reconnect) or QoS 0.
Commands are JSON objects of at most `agent.commands.MAX_COMMAND_BYTES`; unknown fields, wrong types,
retained commands (they would replay on every reconnect) and unknown topics are rejected and reported
on `root/events` as `command_rejected`; nothing a publisher sends can end the session. Zero-length
messages (how MQTT clears a retained message) are ignored; `interrupt` takes `{}`.
The connection is re-established with exponential backoff and every subscription is renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
from pydantic import ValidationError

from agent.commands import MAX_COMMAND_BYTES, Command, loads_json, parse_command
from agent.errors import InputError
from plugins.control_mqtt.config import MqttControlConfig

__all__ = ["COMMAND_KINDS", "MqttControl"]

log = logging.getLogger("plugins.control_mqtt")

COMMAND_KINDS = ("say", "emotion", "gesture", "interrupt", "state")
QOS_COMMANDS = 2
QOS_TELEMETRY = 0
QOS_EVENTS = 1
QOS_STATUS = 1


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class MqttControl:
    """`agent.interfaces.ControlChannel` over MQTT. Start with `await start()`, end with `aclose()`."""

    Config = MqttControlConfig

    def __init__(self, config: MqttControlConfig, **_: Any) -> None:
        self.config = config
        self.root = "/".join(p for p in (config.prefix, config.agent, config.session) if p)
        self.topic_status = f"{self.root}/status"
        self.topic_events = f"{self.root}/events"
        self.topic_telemetry = f"{self.root}/telemetry"
        self.topic_commands = f"{self.root}/cmd/+"
        self.client_id = config.client_id or f"flowact-{config.agent}-{secrets.token_hex(4)}"
        self.connected = asyncio.Event()
        self.connections = 0  # successful connections so far (reconnects = connections - 1)
        self.rejected = 0
        self.accepted = 0
        self.dropped_outgoing = 0
        self._commands: asyncio.Queue[Command | None] = asyncio.Queue(maxsize=config.command_queue)
        self._out: deque[_Outgoing] = deque()
        self._out_ready = asyncio.Event()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._closing = False

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background; wait up to `connect_timeout_s` for the first connection.

        A broker that is down at start is not fatal: the channel keeps retrying with backoff.
        """
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.config.agent}")
        try:
            await asyncio.wait_for(self.connected.wait(), self.config.connect_timeout_s)
        except TimeoutError:
            log.warning(
                "MQTT broker %s:%d not reachable yet; retrying in the background",
                self.config.host, self.config.port,
            )

    async def aclose(self) -> None:
        """Say `offline` (retained), disconnect, stop the connection task and end `commands()`."""
        if self._closing:
            return
        self._closing = True
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                await client.publish(self.topic_status, b"offline", qos=QOS_STATUS, retain=True, timeout=2.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.connected.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._commands.put_nowait(None)
        if self._commands.full():  # make room for the end marker
            self._commands.get_nowait()
            self._commands.put_nowait(None)

    # --- ControlChannel ------------------------------------------------------------------------
    async def commands(self) -> AsyncIterator[Command]:
        """Validated commands, in arrival order, until `aclose()`."""
        while True:
            cmd = await self._commands.get()
            if cmd is None:
                return
            yield cmd

    async def publish_telemetry(self, payload: dict[str, Any]) -> None:
        """Latest metrics; while offline only the newest snapshot is kept (stale ones are useless)."""
        if not self.connected.is_set() and self._out:
            self._out = deque(m for m in self._out if m.topic != self.topic_telemetry)
        self._enqueue(_Outgoing(self.topic_telemetry, _json(payload), QOS_TELEMETRY))

    async def publish_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._seq += 1
        body = {"kind": kind, "seq": self._seq, "payload": payload}
        self._enqueue(_Outgoing(self.topic_events, _json(body), QOS_EVENTS))

    def _enqueue(self, item: _Outgoing) -> None:
        """Never blocks: while offline the oldest messages beyond `outgoing_queue` are dropped."""
        if self._closing:
            return
        if len(self._out) >= self.config.outgoing_queue:
            self._out.popleft()
            self.dropped_outgoing += 1
        self._out.append(item)
        self._out_ready.set()

    # --- connection ----------------------------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
        cfg = self.config
        env = os.environ
        username = env.get(cfg.username_env) or None
        password = env.get(cfg.password_env) or None
        tls = cfg.tls or env.get(cfg.tls_env, "").strip().lower() in ("1", "true", "yes", "on")
        tls_context: ssl.SSLContext | None = None
        if tls:
            tls_context = ssl.create_default_context(cafile=env.get(cfg.ca_file_env) or None)
            cert = env.get(cfg.cert_file_env)
            if cert:
                tls_context.load_cert_chain(cert, env.get(cfg.key_file_env) or None)
            if cfg.tls_insecure:
                tls_context.check_hostname = False
        will = aiomqtt.Will(self.topic_status, b"offline", qos=QOS_STATUS, retain=True)
        return aiomqtt.Client(
            cfg.host, cfg.port, username=username, password=password, identifier=self.client_id,
            will=will, keepalive=cfg.keepalive_s, tls_context=tls_context, timeout=cfg.connect_timeout_s,
            clean_session=True,
        )

    async def _run(self) -> None:
        delay = self.config.reconnect_min_s
        while not self._closing:
            try:
                client = self._make_client()
                async with client:
                    self._client = client
                    await self._on_connect(client)
                    delay = self.config.reconnect_min_s
                    await self._serve(client)
            except aiomqtt.MqttError as e:
                # str(e) carries the broker's reason (e.g. "Not authorized"), never the credentials
                log.warning("MQTT %s:%d: %s; reconnecting in %.2f s", self.config.host, self.config.port, e, delay)
            except (OSError, ssl.SSLError) as e:
                log.warning("MQTT %s:%d: %s; reconnecting in %.2f s", self.config.host, self.config.port, e, delay)
            finally:
                self.connected.clear()
                self._client = None
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2.0, self.config.reconnect_max_s)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self.topic_commands, qos=QOS_COMMANDS)
        await client.publish(self.topic_status, b"online", qos=QOS_STATUS, retain=True)
        self.connections += 1
        self.connected.set()
        log.info("MQTT connected to %s:%d as %s (connection %d)", self.config.host, self.config.port,
                 self.client_id, self.connections)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Read commands and write outgoing messages until the link fails (raises MqttError)."""
        reader = asyncio.create_task(self._read(client), name=f"mqtt-{self.config.agent}-read")
        writer = asyncio.create_task(self._write(client), name=f"mqtt-{self.config.agent}-write")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # re-raise the link error
        finally:
            for t in (reader, writer):
                t.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    async def _write(self, client: aiomqtt.Client) -> None:
        while True:
            while not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
            item = self._out[0]
            try:
                await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            except aiomqtt.MqttError:
                if item.qos == 0:  # telemetry is lossy by design; events are retried after reconnect
                    self._out.popleft()
                raise
            self._out.popleft()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._handle(message.topic.value, message.payload, retain=message.retain)

    # --- validation ----------------------------------------------------------------------------
    def _handle(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        """Validate one incoming message; queue the command or report why it was rejected."""
        kind = topic.rsplit("/", 1)[-1]
        raw = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        size = len(raw)
        if size == 0:  # how MQTT clears a retained message: housekeeping, not a command
            return None
        if kind not in COMMAND_KINDS:
            return self._reject(topic, size, "unknown_command", f"unknown command {kind!r}; use one of {COMMAND_KINDS}")
        if retain:
            return self._reject(topic, size, "retained", "retained commands are ignored (they replay on reconnect)")
        if size > MAX_COMMAND_BYTES:
            return self._reject(topic, size, "too_large", f"{size} bytes > limit {MAX_COMMAND_BYTES}")
        try:
            data = loads_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return self._reject(topic, size, "invalid_json", str(e)[:200])
        if not isinstance(data, dict):
            return self._reject(topic, size, "invalid_json", f"expected a JSON object, got {type(data).__name__}")
        try:
            cmd = parse_command(kind, data)
        except ValidationError as e:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or kind}: {err['msg']}" for err in e.errors()[:5]
            )
            return self._reject(topic, size, "invalid_command", detail[:500])
        except InputError as e:
            return self._reject(topic, size, "invalid_command", str(e)[:500])
        try:
            self._commands.put_nowait(cmd)
        except asyncio.QueueFull:
            return self._reject(topic, size, "busy", f"more than {self.config.command_queue} commands waiting")
        self.accepted += 1
        return None

    def _reject(self, topic: str, size: int, reason: str, error: str) -> None:
        self.rejected += 1
        if self.rejected <= 20 or self.rejected % 1000 == 0:  # a flooding publisher cannot flood the log
            log.warning("MQTT command on %s rejected (%s, %d so far): %s", topic[:200], reason, self.rejected, error)
        self._seq += 1
        body = {"kind": "command_rejected", "seq": self._seq,
                "payload": {"topic": topic, "reason": reason, "error": error, "bytes": size}}
        self._enqueue(_Outgoing(self.topic_events, _json(body), QOS_EVENTS))


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")
