"""Agent-side smoke test for a running flowact avatar worker: speak an audio file (or espeak text) through it.

    python examples/livekit_agents_avatar/say.py --room support-42 --text "Hello, I am your avatar." --emotion happy

Joins the room as an agent participant (token minted from LIVEKIT_API_KEY / LIVEKIT_API_SECRET, or
LIVEKIT_AGENT_TOKEN), waits for the avatar, streams the audio with livekit-agents' own
`DataStreamAudioOutput` (exactly what an `AgentSession` does), optionally asks for an expression over
`flowact.command`, waits for `lk.playback_finished` and prints one JSON line. Exit 0 when the avatar
played it all, 1 otherwise, 2 for bad arguments. Run it from the project venv with PYTHONPATH
set to the checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

from agent.errors import InputError
from flowact.audio import float_to_int16
from plugins.input_local import read_audio_file
from plugins.livekit_avatar import send_avatar_command
from plugins.transport_livekit.credentials import mint_token
from plugins.tts_espeak import EspeakTTS

RATE = 24000


async def _audio(args: argparse.Namespace) -> np.ndarray:
    """The speech as int16 at RATE: the file through the project's reader (WAV, or anything PyAV decodes),
    or the text through the espeak-ng engine plugin. Raises InputError for an unreadable file."""
    if args.wav is not None:
        return float_to_int16(read_audio_file(args.wav, RATE))
    tts = EspeakTTS(sample_rate=RATE)
    return np.concatenate([c.audio.samples async for c in tts.synthesize(args.text)])


async def _say(args: argparse.Namespace, url: str, token: str, pcm: np.ndarray) -> dict[str, object]:
    rate = RATE
    room = rtc.Room()
    await asyncio.wait_for(room.connect(url, token), 30)
    try:
        t0 = time.monotonic()
        while args.avatar not in room.remote_participants:  # noqa: ASYNC110 - no SDK event to await here
            if time.monotonic() - t0 > args.wait:
                return {"ok": False, "error": f"avatar {args.avatar!r} did not join within {args.wait:.0f} s"}
            await asyncio.sleep(0.1)
        output = DataStreamAudioOutput(room, destination_identity=args.avatar, wait_playback_start=True)
        if args.emotion:
            hold_s = min(600.0, len(pcm) / rate + 1)
            await send_avatar_command(room, args.avatar, "emotion", args.emotion, duration=hold_s, timeout_s=15)
        t1 = time.monotonic()
        n = rate // 50
        for i in range(0, len(pcm), n):
            part = pcm[i : i + n]
            await output.capture_frame(rtc.AudioFrame(part.tobytes(), rate, 1, len(part)))
        output.flush()
        ev = await asyncio.wait_for(output.wait_for_playout(), len(pcm) / rate + 15)
        played, total = float(ev.playback_position), len(pcm) / rate
        return {"ok": not ev.interrupted and played >= total - 0.3, "played_s": round(played, 2),
                "audio_s": round(total, 2), "interrupted": ev.interrupted,
                "playout_s": round(time.monotonic() - t1, 2)}
    finally:
        await room.disconnect()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--room", required=True)
    p.add_argument("--url", default=os.environ.get("LIVEKIT_URL"))
    p.add_argument("--identity", default="agent", help="this agent's identity (the avatar's --agent-identity)")
    p.add_argument("--avatar", default="flowact-avatar", help="the avatar worker's identity")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--wav", type=Path, help="audio file to speak (WAV, or anything PyAV decodes)")
    what.add_argument("--text", help="text to speak with espeak-ng")
    p.add_argument("--emotion", default=None, help="an emotion for the avatar while it speaks (e.g. happy)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the avatar to join")
    args = p.parse_args()
    if not args.url:
        print("error: no server URL: pass --url or set LIVEKIT_URL", file=sys.stderr)
        return 2
    token = os.environ.get("LIVEKIT_AGENT_TOKEN")
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not token and not (key and secret):
        print("error: set LIVEKIT_AGENT_TOKEN, or LIVEKIT_API_KEY and LIVEKIT_API_SECRET", file=sys.stderr)
        return 2
    try:
        pcm = asyncio.run(_audio(args))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    token = token or mint_token(key or "", secret or "", room=args.room, identity=args.identity, name="Agent",
                                ttl_s=900)
    try:
        result = asyncio.run(_say(args, args.url, token, pcm))
    except (TimeoutError, rtc.ConnectError, rtc.RpcError) as e:
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # skip livekit 1.1.21's native teardown, which can abort the process (see the worker CLI)
