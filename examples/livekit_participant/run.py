"""Put the support bot (configs/support_bot.yaml) in a LiveKit room as an avatar participant.

    export LIVEKIT_URL=wss://<your-project>.livekit.cloud LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python examples/livekit_participant/run.py --room support

The agent mints its own least-privilege token; this script also prints a join link for the page in
web/ (a user token for the same room) and the LiveKit Meet alternative. Ctrl-C leaves the room.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent import AgentSession, load_config  # noqa: E402


def user_link(room: str, identity: str, page: str) -> str | None:
    """A join link for the web page (a user token: join this room, publish mic, chat; 1 hour)."""
    key, secret, url = (os.environ.get(k) for k in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL"))
    if not (key and secret and url):
        return None
    import datetime as dt

    from livekit import api

    token = (api.AccessToken(key, secret).with_identity(identity).with_name(identity)
             .with_ttl(dt.timedelta(hours=1))
             .with_grants(api.VideoGrants(room_join=True, room=room, can_publish_sources=["microphone"]))
             .to_jwt())
    return f"{page}?{urlencode({'url': url, 'token': token})}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "support_bot.yaml"))
    ap.add_argument("--room", default="flowact-support")
    ap.add_argument("--identity", default="ava")
    ap.add_argument("--listen-to", help="only listen to this participant identity (default: first human)")
    ap.add_argument("--page", default="http://127.0.0.1:8090/index.html", help="where web/ is served")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sink = {"type": "livekit", "room": args.room, "identity": args.identity, "name": "Ava",
            **({"listen_to": args.listen_to} if args.listen_to else {})}
    # the room is the input: the user's mic and chat
    session = AgentSession(load_config(args.config, overrides={"input": None, "sink": sink}))

    link = user_link(args.room, "visitor", args.page)
    print(f"room {args.room!r}: the avatar joins as {args.identity!r}")
    if link:
        print(f"talk to it: serve web/ (see README) and open\n  {link}")
    print("or open https://meet.livekit.io -> Custom, with your server URL and a user token for this room")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with session:
        await stop.wait()
    print("left the room")


if __name__ == "__main__":
    asyncio.run(main())
