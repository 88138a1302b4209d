"""PreviewSink: a local web page showing the live avatar with its audio, a chat box and metrics.

One aiohttp server on 127.0.0.1. Each browser opens a websocket that carries JPEG frames and PCM audio
stamped with their media pts (the page schedules audio with WebAudio and shows each frame when the
audio clock reaches its pts, so picture and sound stay in sync), plus JSON state/transcript/metrics.
`/stream.mjpg` serves the same frames as plain MJPEG (VLC, curl, an <img> tag) and `/frame.jpg` the
latest one. Every client has a bounded queue: a slow browser loses frames (then audio), the sink never
waits for it. On a barge-in (`drop_queued_media`) the browsers drop the media of the cut speech they
have not played yet. Typed messages come out of `text()`; with `microphone: true` the browser
microphone comes out of `audio()` as 16 kHz mono chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from agent.commands import loads_json
from agent.errors import InputError, TransportError
from agent.frames import AudioChunk
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.types import AgentState, UInt8Array, VideoChunk
from plugins.preview_web.config import PreviewConfig
from plugins.preview_web.wire import AUDIO, VIDEO, pack, parse_mic

__all__ = ["PreviewSink"]

log = logging.getLogger("plugins.preview_web")

INPUT_RATE = 16000
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_STATIC = ("index.html", "app.js")


class _Client:
    """One browser connection: a bounded outbox drained by its own named task."""

    def __init__(self, ws: web.WebSocketResponse, limit: int, name: str) -> None:
        self.ws = ws
        self.limit = limit
        self.out: deque[str | bytes] = deque()
        self.ready = asyncio.Event()
        self.dropped = 0
        self.task = asyncio.create_task(self._drain(), name=name)

    def offer(self, msg: str | bytes, *, video: bool = False) -> None:
        """Queue without waiting; when full drop the oldest video frame (else the oldest message)."""
        if len(self.out) >= self.limit:
            victim = next((i for i, m in enumerate(self.out) if _is_video(m)), 0 if not video else None)
            if victim is None:  # full of audio/JSON and this is video: drop the new frame
                self.dropped += 1
                return
            del self.out[victim]
            self.dropped += 1
        self.out.append(msg)
        self.ready.set()

    def flush_media(self) -> int:
        """Drop the audio and frames waiting here (JSON stays); returns how many were dropped."""
        kept = [m for m in self.out if not isinstance(m, bytes)]
        n = len(self.out) - len(kept)
        self.out = deque(kept)
        return n

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not self.ws.closed:
                while not self.out:
                    self.ready.clear()
                    await self.ready.wait()
                msg = self.out.popleft()
                if isinstance(msg, bytes):
                    await self.ws.send_bytes(msg)
                else:
                    await self.ws.send_str(msg)


def _is_video(msg: str | bytes) -> bool:
    return isinstance(msg, bytes) and msg[:1] == bytes([VIDEO])


class PreviewSink:
    """`Sink` + `TextInput` (+ `AudioInput` with `microphone: true`) served as a local web page."""

    Config = PreviewConfig
    audio: Callable[[], AsyncIterator[AudioChunk]]
    """The browser microphone (16 kHz mono chunks). Set only with `microphone: true`, so that a
    text-only page is not taken for an audio input (the session would then demand VAD + ASR)."""

    def __init__(self, config: PreviewConfig, **_: Any) -> None:
        self.config = config
        if config.microphone:
            self.audio = self._audio
        self.url = ""
        self.port = 0
        self.width = self.height = self.fps = self.sample_rate = 0
        self._runner: web.AppRunner | None = None
        self._clients: dict[int, _Client] = {}
        self._mjpeg: dict[int, asyncio.Queue[bytes | None]] = {}
        self._texts: asyncio.Queue[str | None] = asyncio.Queue(maxsize=config.text_queue)
        self._mic: asyncio.Queue[AudioChunk | None] = asyncio.Queue(maxsize=config.mic_queue)
        self._mic_samples = 0
        self._last_frame: UInt8Array | None = None
        self._last_jpeg: bytes | None = None
        self._hello: dict[str, Any] = {}
        self._last_json: dict[str, str] = {}  # latest state/metrics for late joiners
        self._next_id = 0
        self._closed = False
        self.chunks_written = 0
        self.frames_sent = 0
        self.media_flushed = 0  # audio/frame messages dropped from outboxes by drop_queued_media

    # --- Sink ----------------------------------------------------------------------------------
    async def start(self, *, width: int, height: int, fps: int, sample_rate: int) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._hello = {"type": "hello", "width": width, "height": height, "fps": fps,
                       "sample_rate": sample_rate, "microphone": self.config.microphone}
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/app.js", self._page)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/stream.mjpg", self._mjpeg_stream)
        app.router.add_get("/frame.jpg", self._frame)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise TransportError(
                f"preview: cannot listen on {self.config.host}:{self.config.port}: {e} "
                "(choose another `sink.port`, or 0 for a free one)"
            ) from e
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.config.port
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"http://{host}:{self.port}/"
        log.info("preview page on %s", self.url)
        if self.config.host not in _LOOPBACK:
            log.warning("preview page bound to %s: anyone who can reach it can talk to the agent", self.config.host)

    async def write(self, chunk: VideoChunk) -> None:
        """Fan one chunk out to every browser without waiting for any of them."""
        if self._closed:
            return
        self.chunks_written += 1
        if chunk.frames:
            self._last_frame = chunk.frames[-1].image
            self._last_jpeg = None
        if not self._clients and not self._mjpeg:
            return
        jpegs = await asyncio.to_thread(self._encode_all, [f.image for f in chunk.frames])
        if jpegs:
            self._last_jpeg = jpegs[-1]
        audio = pack(AUDIO, chunk.sample_rate, chunk.pts, chunk.audio.astype("<i2").tobytes())
        for client in list(self._clients.values()):
            client.offer(audio)
            for frame, jpeg in zip(chunk.frames, jpegs, strict=True):
                client.offer(pack(VIDEO, frame.index, frame.pts, jpeg), video=True)
        for q in list(self._mjpeg.values()):
            for jpeg in jpegs:
                if q.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        q.get_nowait()
                q.put_nowait(jpeg)
        self.frames_sent += len(jpegs)

    def drop_queued_media(self) -> None:
        """Speech was cut (barge-in): every browser drops the audio and frames it has not played yet,
        those waiting in its outbox here and those its page has scheduled (a `flush` message: the
        page stops its scheduled audio, clears its frame queue and re-anchors on the next chunk), so
        the cut is heard now, not after the page's lead and the outbox. Captions and state stay.
        (`Interruptible`; the MJPEG stream carries no sound and is left as it is.)"""
        msg = json.dumps({"type": "flush"})
        for client in list(self._clients.values()):
            self.media_flushed += client.flush_media()
            client.offer(msg)

    async def aclose(self) -> None:
        """Close every websocket and MJPEG stream, stop the server, end `text()` and `audio()`."""
        if self._closed:
            return
        self._closed = True
        for q in list(self._mjpeg.values()):
            _put_end(q)
        clients = list(self._clients.values())
        for c in clients:
            c.task.cancel()
        await asyncio.gather(*(c.task for c in clients), return_exceptions=True)
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.ws.close(code=1001, message=b"agent closed"), 1.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        _put_end(self._texts)
        _put_end(self._mic)

    # --- session hooks -------------------------------------------------------------------------
    async def on_state(self, state: AgentState) -> None:
        self._broadcast_json({"type": "state", "state": AgentState(state).value})

    async def on_transcript(self, role: str, text: str, final: bool) -> None:
        self._broadcast_json({"type": "transcript", "role": role, "text": text, "final": final})

    async def on_metrics(self, payload: dict[str, Any]) -> None:
        self._broadcast_json({"type": "metrics", **payload})

    def _broadcast_json(self, obj: dict[str, Any]) -> None:
        msg = json.dumps(obj, default=str)
        if obj["type"] in ("state", "metrics"):
            self._last_json[obj["type"]] = msg
        for client in list(self._clients.values()):
            client.offer(msg)

    # --- inputs --------------------------------------------------------------------------------
    async def text(self) -> AsyncIterator[str]:
        """Messages typed into the page, until `aclose()`."""
        while True:
            item = await self._texts.get()
            if item is None:
                return
            yield item

    async def _audio(self) -> AsyncIterator[AudioChunk]:
        while True:
            item = await self._mic.get()
            if item is None:
                return
            yield item

    # --- HTTP handlers -------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        name = "index.html" if request.path == "/" else request.path.lstrip("/")
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = resources.files("plugins.preview_web").joinpath(name).read_bytes()  # package data
        ctype = "text/html" if name.endswith(".html") else "application/javascript"
        return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "no-store"})

    async def _frame(self, request: web.Request) -> web.Response:
        self._check_origin(request)
        if self._last_jpeg is None and self._last_frame is not None:
            self._last_jpeg = await asyncio.to_thread(self._encode, self._last_frame)
        if self._last_jpeg is None:
            raise web.HTTPServiceUnavailable(text="no frame yet")
        return web.Response(body=self._last_jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def _check_origin(self, request: web.Request) -> None:
        """Refuse cross-site pages (any website could otherwise talk to a local agent): a browser's
        Origin must be this page, and on a loopback bind the Host must name the loopback too, so a
        site whose DNS name was rebound to 127.0.0.1 (its Origin then matches its Host) is refused."""
        host = request.host
        if self.config.host in _LOOPBACK and _hostname(host) not in _LOOPBACK:
            raise web.HTTPForbidden(text=f"host {host[:100]} may not use this preview")
        origin = request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != host:
            raise web.HTTPForbidden(text=f"origin {origin[:100]} may not use this preview")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        self._check_origin(request)
        if self._closed or len(self._clients) >= self.config.max_clients:
            raise web.HTTPServiceUnavailable(text="preview closed or too many viewers")
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=256 * 1024)
        await ws.prepare(request)
        self._next_id += 1
        cid = self._next_id
        client = _Client(ws, self.config.client_queue, name=f"preview-client-{cid}")
        self._clients[cid] = client
        client.offer(json.dumps(self._hello))
        for latest in self._last_json.values():
            client.offer(latest)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text_message(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_mic(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.pop(cid, None)
            client.task.cancel()
            await asyncio.gather(client.task, return_exceptions=True)
            if client.dropped:
                log.info("preview client %d dropped %d messages (slow browser)", cid, client.dropped)
        return ws

    def _notice(self, client: _Client, text: str) -> None:
        client.offer(json.dumps({"type": "notice", "text": text}))

    def _on_text_message(self, client: _Client, data: str) -> None:
        try:
            obj = loads_json(data)
        except json.JSONDecodeError:
            return self._notice(client, "ignored a message that is not JSON")
        if not isinstance(obj, dict) or obj.get("type") != "text" or not isinstance(obj.get("text"), str):
            return self._notice(client, 'expected {"type": "text", "text": "..."}')
        text = obj["text"].strip()
        if not text:
            return None
        if len(text) > self.config.max_text_chars:
            return self._notice(client, f"message longer than {self.config.max_text_chars} characters")
        try:
            self._texts.put_nowait(text)
        except asyncio.QueueFull:
            return self._notice(client, "the agent is busy: message not sent")
        return None

    def _on_mic(self, client: _Client, data: bytes) -> None:
        if not self.config.microphone:
            return self._notice(client, "the microphone is disabled (sink config `microphone: true`)")
        try:
            block = parse_mic(data)
        except InputError as e:
            return self._notice(client, f"mic: {e}")
        samples = block.samples
        if block.sample_rate != INPUT_RATE:
            samples = float_to_int16(resample(int16_to_float(samples), block.sample_rate, INPUT_RATE))
        chunk = AudioChunk(np.ascontiguousarray(samples, dtype=np.int16), INPUT_RATE,
                           pts=self._mic_samples / INPUT_RATE)
        self._mic_samples += len(samples)
        if self._mic.full():  # the session is behind: keep the newest audio
            with contextlib.suppress(asyncio.QueueEmpty):
                self._mic.get_nowait()
        self._mic.put_nowait(chunk)
        return None

    async def _mjpeg_stream(self, request: web.Request) -> web.StreamResponse:
        self._check_origin(request)
        if self._closed or len(self._mjpeg) >= self.config.max_clients:
            raise web.HTTPServiceUnavailable(text="preview closed or too many viewers")
        resp = web.StreamResponse(headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store",
        })
        await resp.prepare(request)
        self._next_id += 1
        key = self._next_id
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
        self._mjpeg[key] = q
        try:
            while True:
                jpeg = await q.get()
                if jpeg is None:
                    break
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                await resp.write(head + jpeg + b"\r\n")
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._mjpeg.pop(key, None)
        return resp

    # --- encoding ------------------------------------------------------------------------------
    def _encode(self, image: UInt8Array) -> bytes:
        img: np.ndarray[Any, Any] = image
        if self.config.max_width and img.shape[1] > self.config.max_width:
            h = round(img.shape[0] * self.config.max_width / img.shape[1])
            img = cv2.resize(img, (self.config.max_width, h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise TransportError("preview: JPEG encoding failed")
        return bytes(buf.tobytes())

    def _encode_all(self, images: list[UInt8Array]) -> list[bytes]:
        return [self._encode(img) for img in images]


def _hostname(host: str) -> str | None:
    """`127.0.0.1` of `127.0.0.1:8765`, `::1` of `[::1]:8765` (None for a malformed Host header)."""
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


def _put_end(q: asyncio.Queue[Any]) -> None:
    if q.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            q.get_nowait()
    q.put_nowait(None)
