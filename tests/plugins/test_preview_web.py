"""PreviewSink: the page in headless Chromium (frames, audio, chat, mic, hooks) and the server's limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from agent.config import parse_config
from agent.errors import ConfigError, TransportError
from agent.interfaces import AudioInput, Interruptible, Sink, TextInput
from agent.registry import load_plugin
from agent.session import AgentSession
from flowact.types import AgentState, VideoChunk, VideoFrame
from plugins.preview_web import PreviewConfig, PreviewSink
from plugins.preview_web.wire import AUDIO, HEADER, MIC, VIDEO, pack
from tests.fixtures.browser import browser_fixture  # noqa: F401
from tests.fixtures.session_parts import Recorder

pytestmark = pytest.mark.timeout(90)
W, H, FPS, SR, N = 320, 240, 25, 24000, 4
SHOTS = Path(__file__).parents[2] / "out" / "test_shots"

RED, BLUE = (230, 20, 20), (20, 40, 230)


def make_chunk(index: int, *, noise: bool = False, width: int = W, height: int = H) -> VideoChunk:
    """Left half red, right half blue, a white bar moving with the frame index; a 440 Hz tone."""
    frames = []
    for k in range(N):
        i = index * N + k
        if noise:
            img = np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
        else:
            img = np.empty((height, width, 3), np.uint8)
            img[:, : width // 2] = RED
            img[:, width // 2 :] = BLUE
            x = (i * 4) % width
            img[: height // 8, x : x + 8] = 255
        frames.append(VideoFrame(pts=i / FPS, image=img, index=i))
    n = N * SR // FPS
    t = (np.arange(n) + index * n) / SR
    audio = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return VideoChunk(index=index, pts=index * N / FPS, fps=FPS, frames=tuple(frames), audio=audio, sample_rate=SR)


@contextlib.asynccontextmanager
async def feeding(sink: PreviewSink, **kw: Any) -> AsyncIterator[None]:
    """Write chunks in real time (as the session's media loop does) until the block ends."""

    async def feed() -> None:
        i = 0
        t0 = time.monotonic()
        while True:
            await sink.write(make_chunk(i, **kw))
            i += 1
            await asyncio.sleep(max(0.0, t0 + i * N / FPS - time.monotonic()))

    task = asyncio.create_task(feed(), name="test-feeder")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def started(**cfg: Any) -> PreviewSink:
    sink = PreviewSink(PreviewConfig(port=0, **cfg))
    await sink.start(width=W, height=H, fps=FPS, sample_rate=SR)
    assert sink.url.startswith("http://127.0.0.1:") and sink.port > 0
    return sink


class Page:
    """Async helpers around the synchronous selenium driver."""

    def __init__(self, driver: Any) -> None:
        self.d = driver

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.d.execute_script, script, *args)

    async def until(self, script: str, within: float = 20.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = await self.js(script)
            if value:
                return value
            if time.monotonic() > deadline:
                logs = await asyncio.to_thread(self.d.get_log, "browser")
                p = await self.js("return JSON.stringify(window.preview)")
                raise AssertionError(f"page never satisfied {script!r}; preview={p}; console={logs[-5:]}")
            await asyncio.sleep(0.1)

    async def screenshot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        await asyncio.to_thread(self.d.save_screenshot, str(path))
        assert path.stat().st_size > 1000
        return path


async def next_item(it: AsyncIterator[Any], within: float = 10.0) -> Any:
    return await asyncio.wait_for(anext(it), within)


def test_protocols() -> None:
    text_only = PreviewSink(PreviewConfig())
    assert isinstance(text_only, Sink) and isinstance(text_only, TextInput)
    assert not isinstance(text_only, AudioInput)  # a text-only page must not demand VAD + ASR
    assert isinstance(PreviewSink(PreviewConfig(microphone=True)), AudioInput)


async def test_page_shows_frames_plays_audio_and_takes_text_and_mic(browser: Any) -> None:
    sink = await started(microphone=True)
    page = Page(browser)
    texts = sink.text()
    try:
        async with feeding(sink):
            await asyncio.to_thread(browser.get, sink.url)
            await page.until("return window.preview.frames > 10")
            # pixels drawn on the page's canvas are the frames we wrote (JPEG: approximately)
            left, right = await page.js(
                "const g = document.getElementById('video').getContext('2d');"
                "return [Array.from(g.getImageData(40, 200, 1, 1).data),"
                "        Array.from(g.getImageData(280, 200, 1, 1).data)];"
            )
            assert np.allclose(left[:3], RED, atol=30) and np.allclose(right[:3], BLUE, atol=30), (left, right)
            # the tone arrived and was scheduled on the WebAudio clock
            p = await page.until("return window.preview.audioScheduled > 5 && window.preview")
            assert p["audioPeak"] > 7000 and p["audioBytes"] >= 2 * N * SR // FPS * 5
            assert abs(p["avOffsetMs"]) < 200, p["avOffsetMs"]  # frames shown on the audio clock
            # session hooks reach the page
            await sink.on_state(AgentState.SPEAKING)
            await sink.on_transcript("agent", "Hello from the avatar", True)
            await sink.on_metrics({"fps": 25.0, "frames": 100, "av_offset_ms": 0.0,
                                   "last_turn": {"turn": 1, "first_frame": 0.8}})
            await page.until("return window.preview.state === 'speaking'")
            await page.until("return document.getElementById('log').textContent.includes('Hello from the avatar')")
            await page.until("return window.preview.metrics.length === 1")
            assert "speaking" in await page.js("return document.getElementById('state').className")
            # typing in the text box reaches text()
            box = await asyncio.to_thread(browser.find_element, "id", "text")
            await asyncio.to_thread(box.send_keys, "hello avatar\n")
            assert await next_item(texts) == "hello avatar"
            # the (fake) browser microphone reaches audio() as 16 kHz mono
            mic = await asyncio.to_thread(browser.find_element, "id", "mic")
            await asyncio.to_thread(mic.click)
            chunk = await next_item(sink.audio())
            assert chunk.sample_rate == 16000 and chunk.samples.dtype == np.int16 and len(chunk.samples) > 100
            shot = await page.screenshot("preview_page.png")
            shutil.copy(shot, "/tmp/preview_page.png")
    finally:
        await sink.aclose()
    await page.until("return window.preview.connected === false", within=5)
    with pytest.raises(StopAsyncIteration):  # aclose ends text()
        await next_item(texts)


async def test_slow_client_drops_frames_and_never_stalls_the_sink() -> None:
    sink = await started(client_queue=8)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(sink.url + "ws", max_msg_size=0)  # connected, never reads
            for _ in range(100):
                if sink._clients:
                    break
                await asyncio.sleep(0.01)
            client = next(iter(sink._clients.values()))
            width, height = 640, 480
            for i in range(60):  # ~13 MB of incompressible frames, far beyond the socket buffers
                await asyncio.wait_for(sink.write(make_chunk(i, noise=True, width=width, height=height)), 2.0)
                assert len(client.out) <= 8
            assert client.dropped > 0
            assert sink.chunks_written == 60
            # the reader wakes up: the newest messages are still delivered, audio before late video
            got = []
            while True:
                msg = await ws.receive(timeout=2.0)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                got.append(HEADER.unpack_from(msg.data)[0])
                if len(got) > 3 and HEADER.unpack_from(msg.data)[1] >= 59 * N:  # last chunk's frames
                    break
            assert AUDIO in got and VIDEO in got
            await ws.close()
    finally:
        await sink.aclose()


async def test_a_barge_in_drops_the_media_queued_for_a_browser() -> None:
    """`drop_queued_media` (Interruptible): the audio and frames waiting in a browser's outbox go, its
    captions stay, and a `flush` tells the page to drop what it scheduled; what is written after the
    cut reaches the browser after the flush."""
    sink = await started(client_queue=64)
    assert isinstance(sink, Interruptible)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(sink.url + "ws", max_msg_size=0)  # does not read for now
            for _ in range(100):
                if sink._clients:
                    break
                await asyncio.sleep(0.01)
            client = next(iter(sink._clients.values()))
            for i in range(12):  # incompressible frames: more than the socket buffers take
                await sink.write(make_chunk(i, noise=True, width=640, height=480))
            await sink.on_transcript("agent", "cut here", False)
            queued = sum(isinstance(m, bytes) for m in client.out)
            assert queued > 4, len(client.out)
            sink.drop_queued_media()
            assert sink.media_flushed == queued and not any(isinstance(m, bytes) for m in client.out)
            assert [json.loads(m)["type"] for m in client.out][-2:] == ["transcript", "flush"]
            await sink.write(make_chunk(100))
            seen: list[str | int] = []
            while True:  # the backlog the socket had taken, the caption, the flush, then chunk 100
                msg = await ws.receive(timeout=5)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    seen.append(json.loads(msg.data)["type"])
                    continue
                kind, arg, _ = HEADER.unpack_from(msg.data)
                if "flush" in seen:
                    assert kind == AUDIO or arg >= 100 * N, (kind, arg)  # nothing from before the cut
                    seen.append(arg if kind == VIDEO else "audio")
                    if kind == VIDEO and arg == 100 * N + N - 1:
                        break
            assert seen[seen.index("flush") + 1 :] == ["audio", *range(100 * N, 100 * N + N)]
            await ws.close()
    finally:
        await sink.aclose()


async def test_the_page_drops_the_speech_it_scheduled_on_a_barge_in(browser: Any) -> None:
    """The page schedules audio ahead on its WebAudio clock: a `flush` stops it and clears the frames
    waiting to be shown, and the next chunk plays at once (re-anchored, no gap for the dropped time)."""
    sink = await started()
    page = Page(browser)
    try:
        async with feeding(sink):
            await asyncio.to_thread(browser.get, sink.url)
            await page.until("return window.preview.audioScheduled > 5 && window.preview.frames > 10")
        for i in range(1000, 1012):  # ~2 s of speech handed over at once (a sink ahead of playout)
            await sink.write(make_chunk(i))
        pending = await page.until("const p = window.preview.pending(); return p.audio >= 8 && p")
        sink.drop_queued_media()
        await page.until("const p = window.preview; return p.flushes === 1 && p.pending().audio === 0"
                         " && p.pending().frames === 0", within=5)
        dropped = await page.js("return window.preview.flushed")
        assert dropped["audio"] >= 6 and dropped["frames"] >= 20, (pending, dropped)  # still ahead when cut
        shown = await page.js("return window.preview.frames")
        await sink.write(make_chunk(1012))
        await page.until(f"return window.preview.frames > {shown} && window.preview.pending().audio <= 1", within=5)
        print("scheduled before the flush", pending, "dropped by it", dropped)
    finally:
        await sink.aclose()


async def test_bad_messages_get_notices_and_cross_site_pages_are_refused() -> None:
    sink = await started(max_text_chars=50)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(sink.url + "ws", origin="http://evil.example")
            assert e.value.status == 403
            ws = await http.ws_connect(sink.url + "ws")
            hello = json.loads((await ws.receive(timeout=5)).data)
            assert hello == {"type": "hello", "width": W, "height": H, "fps": FPS, "sample_rate": SR,
                             "microphone": False}
            for bad in ("not json", json.dumps({"type": "shell", "cmd": "ls"}), json.dumps({"type": "text"}),
                        json.dumps({"type": "text", "text": "x" * 51})):
                await ws.send_str(bad)
            await ws.send_bytes(pack(MIC, 16000, 0.0, b"\x00\x00" * 160))  # mic disabled
            notices = []
            while len(notices) < 5:
                notices.append(json.loads((await ws.receive(timeout=5)).data)["text"])
            assert "longer than 50" in notices[3] and "microphone is disabled" in notices[4]
            assert sink._texts.empty()
            await ws.send_str(json.dumps({"type": "text", "text": "  fine  "}))
            assert await next_item(sink.text()) == "fine"
            async with http.get(sink.url + "frame.jpg") as r:
                assert r.status == 503  # nothing written yet
            await sink.write(make_chunk(0))
            async with http.get(sink.url + "frame.jpg") as r:
                assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
            async with http.get(sink.url + "stream.mjpg") as r:
                assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
                for _ in range(50):
                    if sink._mjpeg:
                        break
                    await asyncio.sleep(0.01)
                await sink.write(make_chunk(1))
                head = await r.content.readuntil(b"\r\n\r\n")
                assert head.startswith(b"--frame") and b"image/jpeg" in head
                assert (await r.content.readexactly(2)) == b"\xff\xd8"
            await ws.close()
    finally:
        await sink.aclose()


async def test_typed_message_gets_a_spoken_animated_reply(browser: Any) -> None:
    """The whole loop through the page: type -> session (scripted LLM, espeak, portrait) -> page."""
    try:
        load_plugin("tts", "espeak")
    except ConfigError as e:
        pytest.skip(f"needs the espeak TTS plugin: {e}")
    cfg = parse_config({
        "session": {"width": 320, "height": 320},
        "llm": {"type": "scripted", "replies": ["[smile] Hello! It is nice to meet you on this page."],
                "first_token_s": 0.05},
        "tts": {"type": "espeak"},
        "generator": {"type": "portrait"},
        "sink": {"type": "preview", "port": 0},
    }, environ={})
    session = AgentSession(cfg)
    rec = Recorder()
    session.add_observer(rec)
    page = Page(browser)
    async with session:
        sink = session.c.sink
        assert isinstance(sink, PreviewSink) and session.c.text_input is sink
        await asyncio.to_thread(browser.get, sink.url)
        await page.until("return window.preview.frames > 10")  # idle animation before anyone speaks
        box = await asyncio.to_thread(browser.find_element, "id", "text")
        await asyncio.to_thread(box.send_keys, "hi there\n")
        await page.until("return window.preview.state === 'speaking'")
        await page.until("return window.preview.lastAudioPeak > 1000")  # speech, not silence
        await page.screenshot("preview_session_speaking.png")
        await session.wait_idle(timeout=60)
        await page.until("return window.preview.transcripts.some(t => t.role === 'agent')")
        await page.until("return window.preview.metrics.length > 0")
        p = await page.js("return window.preview")
        shot = await page.screenshot("preview_session.png")
        shutil.copy(shot, "/tmp/preview_session.png")
    user_said = [pl["text"] for _, k, pl in rec.events if k == "transcript" and pl["role"] == "user"]
    assert user_said == ["hi there"]
    agent_said = [t["text"] for t in p["transcripts"] if t["role"] == "agent"]
    assert agent_said == ["Hello! It is nice to meet you on this page."]
    assert p["audioPeak"] > 1000 and p["frames"] > 20
    speaking = [v for v in rec.videos if v.state == AgentState.SPEAKING]
    assert len(speaking) >= 3
    a, b = speaking[0].frames[0].image, speaking[len(speaking) // 2].frames[0].image
    assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() > 0.1  # the face moves while speaking


async def test_busy_port_is_a_clear_error_and_aclose_ends_every_stream() -> None:
    first = await started()
    try:
        taken = PreviewSink(PreviewConfig(port=first.port))
        with pytest.raises(TransportError, match=rf"127.0.0.1:{first.port}.*sink.port"):
            await taken.start(width=W, height=H, fps=FPS, sample_rate=SR)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(first.url + "ws")
            async with http.get(first.url + "stream.mjpg") as r:
                for _ in range(100):
                    if first._mjpeg and first._clients:
                        break
                    await asyncio.sleep(0.01)
                await first.write(make_chunk(0))
                await asyncio.wait_for(first.aclose(), 5)
                rest = await asyncio.wait_for(r.content.read(), 5)  # the stream ends, it does not hang
                assert rest.count(b"--frame") == N
            kinds = []
            for _ in range(20):  # hello, the chunk's audio and frames, then the close
                kinds.append((await ws.receive(timeout=5)).type)
                if kinds[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert kinds[-1] == aiohttp.WSMsgType.CLOSE and kinds.count(aiohttp.WSMsgType.BINARY) == N + 1
            assert not first._clients and not first._mjpeg
    finally:
        await first.aclose()
