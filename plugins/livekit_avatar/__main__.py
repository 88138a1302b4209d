"""Run flowact as the avatar worker of a livekit-agents agent, as a process of its own.

    python -m plugins.livekit_avatar --portrait face.jpg --room support-42 --agent-identity agent

The server URL comes from `--url` or LIVEKIT_URL. Credentials: a ready token in LIVEKIT_AVATAR_TOKEN,
else LIVEKIT_API_KEY / LIVEKIT_API_SECRET (environment or `--secrets-file`), from which a short-lived
token is minted for exactly this room and identity (kind `agent`, publish camera + microphone,
subscribe, data; with `lk.publish_on_behalf` naming the agent, as livekit-agents' avatars do).
Secrets are never printed. Runs until SIGINT/SIGTERM or until the agent leaves (unless `--stay`),
then leaves cleanly; the SDK rides out signal loss, and when it gives up the worker exits with 1.
Exit codes: 0 after a clean leave, 1 when joining, serving or the connection failed, 2 for bad
arguments.
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
from typing import Any

from livekit import rtc
from pydantic import ValidationError

from flowact.errors import ConfigError
from plugins.livekit_avatar.generator import FlowactAvatarConfig, run_avatar_worker
from plugins.transport_livekit.config import LiveKitConfig
from plugins.transport_livekit.credentials import resolve

__all__ = ["main"]

log = logging.getLogger("flowact.livekit_avatar")


class UsageError(Exception):
    """Bad arguments or configuration: reported in one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m plugins.livekit_avatar", description=__doc__.split("\n\n")[0])
    p.add_argument("--portrait", type=Path, required=True, help="portrait image (one face)")
    p.add_argument("--room", required=True, help="room to join")
    p.add_argument("--url", default=None, help="ws(s):// server URL (default: env LIVEKIT_URL)")
    p.add_argument("--identity", default="flowact-avatar", help="the avatar's participant identity")
    p.add_argument("--agent-identity", default=None,
                   help="identity of the agent whose audio to play (default: the first agent that streams)")
    p.add_argument("--secrets-file", type=Path, default=None, help="KEY=value file with LIVEKIT_API_KEY/SECRET")
    p.add_argument("--token-ttl", type=int, default=900, help="lifetime of a minted token, seconds")
    p.add_argument("--size", default="480x270", help="published video size WxH")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--sample-rate", type=int, default=24000, help="published audio rate")
    p.add_argument("--motion", choices=["procedural", "learned"], default="procedural")
    p.add_argument("--checkpoint", default=None, help="learned-motion checkpoint (with --motion learned)")
    p.add_argument("--listen-to", default=None, help="the user whose microphone drives listening nods "
                   "(default: the first human)")
    p.add_argument("--no-listen", dest="listen", action="store_false", help="do not subscribe to the user's microphone")
    p.add_argument("--stay", dest="leave_with_agent", action="store_false",
                   help="keep serving after the agent leaves (default: leave with it)")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _usage(e: ValidationError) -> UsageError:
    """The first validation error, named by its command-line flag."""
    first = e.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    flags = {"width": "--size", "height": "--size", "token_ttl_s": "--token-ttl", "url": "--url"}
    where = flags.get(field, f"--{field.replace('_', '-')}") if field else ""
    msg = first["msg"].removeprefix("Value error, ")
    return UsageError(f"{where}: {msg}" if where else msg)


def _config(args: argparse.Namespace) -> FlowactAvatarConfig:
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 480x270, got {args.size!r}") from None
    if not args.portrait.expanduser().is_file():
        raise UsageError(f"--portrait: {args.portrait}: file not found")
    try:
        return FlowactAvatarConfig(portrait=args.portrait, width=w, height=h, fps=args.fps,
                                   sample_rate=args.sample_rate, motion=args.motion, checkpoint=args.checkpoint,
                                   listen=args.listen, listen_to=args.listen_to)
    except ValidationError as e:
        raise _usage(e) from None


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    """(url, token): a ready token (LIVEKIT_AVATAR_TOKEN), or one minted from the key and secret by the
    transport's own resolver (environment, then the secrets file)."""
    try:
        cfg = LiveKitConfig(url=args.url, room=args.room, identity=args.identity, name="Avatar",
                            token=os.environ.get("LIVEKIT_AVATAR_TOKEN") or None, secrets_file=args.secrets_file,
                            token_ttl_s=args.token_ttl)
    except ValidationError as e:
        raise _usage(e) from None
    attributes = {"lk.publish_on_behalf": args.agent_identity} if args.agent_identity else None
    try:
        return resolve(cfg, attributes=attributes)
    except ConfigError as e:
        raise UsageError(str(e)) from None


async def _serve(args: argparse.Namespace, config: FlowactAvatarConfig, url: str, token: str) -> int:
    stop = asyncio.Event()
    why: list[str] = []  # what ended the session: a signal, the agent leaving, or losing the room

    def stop_for(reason: str) -> None:
        if not stop.is_set():
            why.append(reason)
            stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_for, sig.name)
    room = rtc.Room()
    def on_disconnected(reason: Any = 0) -> None:  # after the SDK gave up reconnecting, or a server kick
        name = str(reason)
        with contextlib.suppress(Exception):
            name = rtc.DisconnectReason.Name(reason)
        stop_for(f"disconnected by the server ({name})")
    room.on("disconnected", on_disconnected)

    def on_left(p: rtc.RemoteParticipant) -> None:  # the avatar's session ends with its agent's
        if room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
            return  # the SDK drops every participant while it reconnects: that is not the agent leaving
        agent_kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ours = p.identity == args.agent_identity if args.agent_identity else p.kind == agent_kind
        if ours and args.leave_with_agent:
            log.info("agent %r left the room", p.identity)
            stop_for("agent left")
    room.on("participant_disconnected", on_left)
    try:
        await asyncio.wait_for(room.connect(url, token), 30)
    except (TimeoutError, rtc.ConnectError) as e:
        log.error("cannot join room %r at %s: %s", args.room, url, e or "timed out")
        with contextlib.suppress(Exception):  # let the SDK wind its engine down before we exit
            await room.disconnect()
        return 1
    log.info("joined room %r as %r; waiting for %s", args.room, args.identity,
             repr(args.agent_identity) if args.agent_identity else "the first agent")
    worker = None
    starting = asyncio.create_task(run_avatar_worker(room, config, sender_identity=args.agent_identity))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            worker = starting.result()
            log.info("serving as the avatar of %s", args.agent_identity or "the first agent")
            await stopping
        if why and why[0].startswith("disconnected"):
            log.error("lost the room: %s", why[0])
            return 1
        return 0
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        if worker is not None:
            with contextlib.suppress(Exception):
                await worker.aclose()
        await room.disconnect()
        log.info("left room %r (%d chunks rendered)", args.room, worker.generator.chunks_rendered if worker else 0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = _config(args)
        url, token = _credentials(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        rc = asyncio.run(_serve(args, config, url, token))
    except Exception as e:
        log.error("avatar worker failed: %s: %s", type(e).__name__, e)
        rc = 1
    return rc


def _exit_now(rc: int) -> None:
    """Exit without the interpreter's teardown. The room is already left and every task closed, but
    livekit 1.1.21's native runtime, torn down by its atexit hook, aborted the process (a Rust panic in
    an FFI callback, SIGABRT) in about one exit in eight here; supervisors need the real exit code."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    _exit_now(main())
