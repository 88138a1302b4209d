"""Security checks as tests: secrets never leak (logs, errors, metrics, events, sidecar, recording),
minted LiveKit tokens carry only the grants the agent needs, the preview page is local-only and refuses
other origins (DNS rebinding included), and remotely named files cannot leave their directory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import ssl
import sys
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import InputError
from agent.paths import safe_path
from plugins.preview_web import PreviewConfig, PreviewSink
from plugins.transport_livekit.credentials import mint_token
from tests.fixtures.mosquitto import ACL_USERS, Mosquitto, mosquitto_secured_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


# --- secrets ---------------------------------------------------------------------------------------


def _leaks(blob: bytes, secret: str) -> bool:
    """The secret in clear, or base64-encoded (as in a basic-auth header or a JWT-ish dump)."""
    s = secret.encode()
    return s in blob or base64.b64encode(s) in blob or base64.urlsafe_b64encode(s).rstrip(b"=") in blob


@pytest.mark.timeout(300)
async def test_secrets_never_appear_in_logs_metrics_events_sidecar_or_recording(
    mosquitto_secured: Mosquitto, tmp_path: Path
) -> None:
    broker = mosquitto_secured
    tmp_path = tmp_path / "run"  # the broker's own files (its TLS key) live in the fixture's tmp_path
    tmp_path.mkdir()
    assert broker.ca_file is not None
    secret_values = {
        "LIVEKIT_API_SECRET": "lk-secret-" + secrets.token_hex(16),
        "OPENAI_API_KEY": "sk-test-" + secrets.token_hex(16),
        "FLOWACT_MQTT_PASSWORD": ACL_USERS["agent"],  # the broker's real password for `agent`
    }
    env = {**os.environ, **secret_values, "LIVEKIT_API_KEY": "lk-key", "LIVEKIT_URL": "ws://127.0.0.1:9",
           "FLOWACT_MQTT_USERNAME": "agent", "FLOWACT_MQTT_TLS": "1", "FLOWACT_MQTT_CA_FILE": str(broker.ca_file),
           "PYTHONPATH": str(ROOT)}
    script = tmp_path / "script.yaml"
    script.write_text('- text: "Hello, can you hear me?"\n  pause_s: 0.2\n- text: "What is my password?"\n')
    out = tmp_path / "session.mp4"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "session: {portrait: examples/assets/grace_hopper.jpg, width: 320, height: 240, realtime: false,"
        " idle_tail_s: 0.2}\n"
        f"input: {{type: script, path: {script}}}\n"
        "llm: {type: scripted}\ntts: {type: espeak}\ngenerator: {type: portrait}\n"
        f"sink: {{type: file, path: {out}}}\n"
        f"control: {{type: mqtt, port: {broker.port}, agent: sec, connect_timeout_s: 5}}\n"
    )
    tls = ssl.create_default_context(cafile=str(broker.ca_file))
    seen: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port, username="operator", password=ACL_USERS["operator"],
                              tls_context=tls) as op:
        await op.subscribe("flowact/#", qos=1)

        async def collect() -> None:
            async for m in op.messages:
                seen.append(m.topic.value.encode() + b" " + bytes(m.payload if isinstance(m.payload, bytes)
                                                                   else str(m.payload).encode()))

        collector = asyncio.create_task(collect(), name="mqtt-collect")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "-v", "run", "-c", str(cfg), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
        await asyncio.sleep(0.5)
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    # `say` writes the sidecar JSON (metrics, turns) beside its recording
    say = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "-v", "say", "-t", "Hello there.", "-o", str(tmp_path / "say.mp4"),
        "-c", str(cfg), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    say_out, say_err = await asyncio.wait_for(say.communicate(), 240)
    assert say.returncode == 0, say_err.decode()[-3000:]
    logs = stdout + stderr + say_out + say_err
    assert b"DEBUG" in logs and b"MQTT connected" in logs  # debug logging was on, MQTT really ran
    topics = {s.split(b" ", 1)[0] for s in seen}
    assert b"flowact/sec/telemetry" in topics and b"flowact/sec/events" in topics
    artifacts = {"logs": logs, "mqtt": b"\n".join(seen)}
    for name in os.listdir(tmp_path):  # the recordings, the sidecar JSON, anything else the runs wrote
        if name not in ("cfg.yaml", "script.yaml"):
            artifacts[name] = (tmp_path / name).read_bytes()
    assert {"session.mp4", "say.mp4", "say.json"} <= set(artifacts), sorted(artifacts)
    for name, secret in secret_values.items():
        for where, blob in artifacts.items():
            assert not _leaks(blob, secret), f"{name} leaked into {where}"


async def test_openai_key_is_not_in_errors_or_debug_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An endpoint that echoes the bearer key in its 401 body (some proxies do) and one that is not
    listening: the key appears in neither error nor in the debug logs."""
    from agent.errors import EngineError
    from agent.interfaces import ChatMessage
    from plugins.llm_openai import OpenAILLM, OpenAILLMConfig

    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level("DEBUG")

    async def refuse(request: aiohttp.web.Request) -> aiohttp.web.Response:
        echoed = request.headers.get("Authorization", "")
        assert key in echoed  # the key really was sent
        return aiohttp.web.json_response({"error": {"message": f"invalid api key: {echoed}", "type": "auth"}},
                                         status=401)

    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    errors: list[str] = []
    try:
        for url in (f"http://127.0.0.1:{port}/v1", "http://127.0.0.1:9/v1"):  # 401, then nothing listening
            llm = OpenAILLM(OpenAILLMConfig(base_url=url, timeout_s=3, first_token_timeout_s=3, retries=0))
            with pytest.raises(EngineError) as e:
                async for _ in llm.chat([ChatMessage("user", "hi")]):
                    pass
            errors.append(f"{e.value!s} {e.value!r}")
    finally:
        await runner.cleanup()
    assert "HTTP 401" in errors[0] and "invalid api key: Bearer [api key]" in errors[0]  # the body, redacted
    assert all(key not in err for err in errors)
    assert "HTTP Request: POST" in caplog.text or "Request options" in caplog.text  # debug logging was on
    assert not _leaks(caplog.text.encode(), key)


# --- LiveKit tokens --------------------------------------------------------------------------------


def test_minted_token_grants_exactly_join_publish_subscribe_data_in_one_room() -> None:
    import jwt

    secret = "s" * 32
    tok = mint_token("key", secret, room="support-7", identity="ava", name="Ava", ttl_s=600)
    claims = jwt.decode(tok, secret, algorithms=["HS256"])
    assert claims["sub"] == "ava" and claims["iss"] == "key"
    assert secret not in tok and secret not in json.dumps(claims)
    video = claims["video"]
    granted = sorted(k for k, v in video.items() if v is True)
    assert granted == ["canPublish", "canPublishData", "canSubscribe", "canUpdateOwnMetadata", "roomJoin"]
    assert video["room"] == "support-7" and sorted(video["canPublishSources"]) == ["camera", "microphone"]
    # nothing outside the room: no SIP, no admin, no recording or ingress, no hidden participant
    assert not claims.get("sip") or not any(claims["sip"].values())
    assert set(claims) <= {"sub", "iss", "nbf", "exp", "jti", "video", "sip", "name", "kind", "metadata",
                           "attributes", "sha256", "roomPreset", "roomConfig"}
    assert claims["exp"] - claims["nbf"] <= 600 + 5


# --- the preview page ------------------------------------------------------------------------------


async def test_preview_binds_to_loopback_and_refuses_other_origins_and_rebound_hosts() -> None:
    sink = PreviewSink(PreviewConfig(port=0))
    await sink.start(width=64, height=48, fps=25, sample_rate=24000)
    try:
        assert sink._runner is not None
        assert {a[0] for a in sink._runner.addresses} == {"127.0.0.1"}
        port = sink.port
        ws_url = f"http://127.0.0.1:{port}/ws"
        async with aiohttp.ClientSession() as http:
            refused = [
                {"Origin": "http://evil.example"},
                {"Origin": "null"},  # sandboxed iframes, file:// pages
                {"Origin": f"http://127.0.0.1:{port + 1}"},  # another local page
                # DNS rebinding: evil.example now resolves to 127.0.0.1; its Origin matches its Host
                {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
                {"Host": f"evil.example:{port}"},  # a non-browser client naming another host
                {"Host": "[::1"},  # malformed
            ]
            for headers in refused:
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await http.ws_connect(ws_url, headers=headers)
                assert e.value.status == 403, headers
                for path in ("frame.jpg", "stream.mjpg"):
                    async with http.get(f"http://127.0.0.1:{port}/{path}", headers=headers) as r:
                        assert r.status == 403, (path, headers)
            for host in (f"127.0.0.1:{port}", f"localhost:{port}"):  # the page itself, by either name
                ws = await http.ws_connect(ws_url, headers={"Host": host, "Origin": f"http://{host}"})
                assert json.loads((await ws.receive(timeout=5)).data)["type"] == "hello"
                await ws.close()
    finally:
        await sink.aclose()


# --- remotely named files ------------------------------------------------------------------------------


def test_safe_path_keeps_names_inside_their_directory(tmp_path: Path) -> None:
    root = tmp_path / "portraits"
    (root / "team").mkdir(parents=True)
    (root / "ava.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    (root / "escape").symlink_to(tmp_path)  # a link inside the root that points out of it
    (root / "loop").symlink_to(root / "loop")
    assert safe_path(root, "ava.jpg") == (root / "ava.jpg").resolve()
    assert safe_path(root, "team/new.jpg") == (root / "team" / "new.jpg").resolve()
    assert safe_path(root, "team/../ava.jpg") == (root / "ava.jpg").resolve()  # stays inside: fine
    for bad in ["../secret.txt", "/etc/passwd", "team/../../secret.txt", "escape/secret.txt", "", ".",
                "ava.jpg\x00.png", "..\\secret.txt", "a\nb", "x" * 300, "loop/x", "//etc/passwd"]:
        with pytest.raises(InputError):
            safe_path(root, bad)


@pytest.fixture(scope="module")
def root_with_an_escaping_link(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("safe-path") / "root"
    root.mkdir()
    (root / "escape").symlink_to(root.parent)
    return root


@settings(max_examples=300, deadline=None)
@given(name=st.lists(st.sampled_from(["a", "b", ".", "..", "../", "/", "\\", "~", "\x00", " ", "é", "%2e", "escape"]),
                    max_size=20).map("".join))
def test_safe_path_never_returns_a_path_outside_the_root(root_with_an_escaping_link: Path, name: str) -> None:
    root = root_with_an_escaping_link
    try:
        p = safe_path(root, name)
    except InputError:
        return
    assert p.is_relative_to(root.resolve()) and p != root.resolve()
