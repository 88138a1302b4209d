"""The soak's LiveKit side: a user in the agent's room on the LiveKit-protocol test server
(tests/fixtures/livekit_server.py), chatting, counting the media that arrives, dropping the
agent's signalling connection.

The fixture keeps every received frame; the soak runs for an hour, so `sample()` counts and trims
those lists each second (the bench's own memory must not grow).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KEEP = 50  # received frames/packets kept per list after each sample


class RoomUser:
    def __init__(self, server: Any, agent_identity: str) -> None:
        self.server = server
        self.identity = agent_identity
        self.current: Any = None
        self.rx: dict[int, list[float]] = {}  # session index -> [video frames, audio seconds] received
        self._last: tuple[float, float] | None = None  # (time, frames) of the previous sample
        self.drops: list[dict[str, Any]] = []

    def _sessions(self) -> list[Any]:
        return [s for s in self.server.sessions if s.identity == self.identity]

    async def join(self) -> None:
        self.current = await self.server.wait_session(self.identity, index=0, within_s=60)
        await self.current.add_user("user")

    async def chat(self, text: str) -> None:
        await self.current.send_chat(text)

    def _count(self, s: Any) -> list[float]:
        """Fold the frames received by `s` into its counters and trim its lists."""
        c = self.rx.setdefault(s.index, [0.0, 0.0])
        if len(s.video) > KEEP:
            c[0] += len(s.video) - KEEP
            del s.video[:-KEEP]
        if len(s.audio) > KEEP:
            rate = s.audio_rate or 48000
            c[1] += sum(len(a) for _, a in s.audio[:-KEEP]) / rate
            del s.audio[:-KEEP]
        del s.signals[:-KEEP]
        del s.texts[:-KEEP]
        return [c[0] + len(s.video), c[1] + sum(len(a) for _, a in s.audio) / (s.audio_rate or 48000)]

    def sample(self) -> dict[str, float]:
        total_v = total_a = 0.0
        for s in self._sessions():
            v, a = self._count(s)
            total_v += v
            total_a += a
        now = time.monotonic()
        t, v0 = self._last or (now, total_v)
        self._last = (now, total_v)
        return {"rx_fps": round((total_v - v0) / max(1e-3, now - t), 2), "rx_video_frames": total_v,
                "rx_audio_s": round(total_a, 2), "room_sessions": float(len(self._sessions()))}

    async def drop(self) -> dict[str, Any]:
        """Close the agent's signalling websocket (no leave); wait for its new session and media on it."""
        old = self.current
        index = len(self._sessions())
        t0 = time.monotonic()
        await self.server.drop_signal(old)
        out: dict[str, Any] = {"media_again": False}
        try:
            new = await self.server.wait_session(self.identity, index=index, within_s=90)
        except TimeoutError:
            out["error"] = "no new signalling session within 90 s"
            self.drops.append(out)
            return out
        out["rejoin_s"] = round(time.monotonic() - t0, 2)
        v0 = self._count(new)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            v, a = self._count(new)
            if v - v0[0] >= 25 and a - v0[1] >= 1.0:
                out["media_again"] = True
                out["media_s"] = round(time.monotonic() - t0, 2)
                break
            await asyncio.sleep(0.1)
        self.current = new
        await new.add_user("user")
        out["rejected"] = list(self.server.rejected)[-4:]
        self.drops.append(out)
        return out

    def summary(self) -> dict[str, Any]:
        totals = [self._count(s) for s in self._sessions()]
        return {"room_sessions": len(totals), "rx_video_frames": sum(t[0] for t in totals),
                "rx_audio_s": round(sum(t[1] for t in totals), 1), "drops": self.drops}


def in_netns(script: str, argv: list[str]) -> int:
    """Re-run `script` inside a private network namespace (LiveKit mode)."""
    from tests.fixtures.livekit_netns import HERE, netns_available

    reason = netns_available()
    if reason is not None:
        print(f"soak: LiveKit mode needs a private network namespace: {reason}", file=sys.stderr)
        return 2
    cmd = ["unshare", "-rn", "sh", str(HERE / "netns_run.sh"), "127.0.0.2", sys.executable, script, *argv]
    root = str(Path(script).resolve().parent.parent)
    return subprocess.call(cmd, env={**os.environ, "FLOWACT_SOAK_NETNS": "1", "PYTHONPATH": root})
