"""`flowact-agent` (also `python -m agent`): run, demo, say, worker, check-config, schema.

User errors (bad config, missing/corrupt portrait, unreadable audio) print one line starting with
`error:` and exit with code 2; no traceback, and no half-written output file.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.app_cli import add_app_commands, run_app_command
from agent.config import AgentConfig, load_config
from agent.errors import UserError
from agent.interfaces import Served
from agent.transcript import TranscriptLog, transcript_path
from flowact.errors import FlowActError

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "local.yaml"
# The demo is the support bot: its answers come from the order tool and the FAQ, so they are right;
# the plain default (facts in the prompt) has the 0.5B model bend them about half the time.
DEMO_CONFIG = ROOT / "configs" / "support_bot.yaml"
DEMO_SCRIPT = ROOT / "configs" / "demo_script.yaml"
EXIT_USER_ERROR = 2
# The dispatch worker is a plugin (livekit-agents' machinery); the agent reaches it by name, as the
# registry reaches every plugin, never by a static import.
WORKER_MODULE = "plugins.livekit_worker"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowact-agent", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a session from a config file")
    run.add_argument("--config", "-c", default=str(DEFAULT_CONFIG))
    run.add_argument("--preview", action="store_true", help="serve the live preview page instead of the sink")
    run.add_argument("--output", "-o", help="MP4 path (overrides sink.path of a file sink)")
    run.add_argument("--transcript", help="JSON-lines transcript (default: beside a file sink's MP4, "
                     "out/session.mp4 -> out/session.transcript.jsonl)")

    demo = sub.add_parser("demo", help="offline demo: scripted support conversation -> out/demo.mp4")
    demo.add_argument("--config", "-c", default=str(DEMO_CONFIG))
    demo.add_argument("--script", default=str(DEMO_SCRIPT))
    demo.add_argument("--output", "-o", default="out/demo.mp4")

    say = sub.add_parser("say", help="one-shot: render a portrait speaking a text to an MP4")
    say.add_argument("--image", "-i", help="portrait (default: the bundled one)")
    say.add_argument("--text", "-t", required=True)
    say.add_argument("--output", "-o", default="out/say.mp4")
    say.add_argument("--config", "-c", default=str(DEFAULT_CONFIG))

    worker = sub.add_parser("worker", help="serve dispatched LiveKit rooms (needs the livekit-agents extra)")
    worker.add_argument("--config", "-c", required=True, help="worker file (see examples/fleet/worker.yaml)")

    chk = sub.add_parser("check-config", help="validate a config file")
    chk.add_argument("file")

    schema = sub.add_parser("schema", help="print a JSON schema")
    schema.add_argument("what", choices=["control", "config"])
    add_app_commands(sub)  # kb index, sessions, transcript
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "check-config":
            cfg = load_config(args.file)
            kinds = ", ".join(f"{k}={v.name}" for k, v in cfg.plugins.items())
            print(f"{args.file}: OK ({kinds})")
            return 0
        if args.command == "schema":
            print(json.dumps(_schema(args.what), indent=2))
            return 0
        if args.command == "run":
            return asyncio.run(_run(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "say":
            return asyncio.run(_say(args))
        app_rc = run_app_command(args)
        if app_rc is not None:
            return app_rc
        if args.command == "worker":
            return _worker(args)
    except FlowActError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR if isinstance(e, UserError) or not e.retryable else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


def _worker(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(WORKER_MODULE)
    except ImportError as e:
        raise UserError(f"worker: cannot import {WORKER_MODULE} ({e}); install the `livekit-agents` extra "
                        "(`make setup` does)") from e
    rc: int = module.main(["--config", args.config, "--log-level", "DEBUG" if args.verbose else "INFO"])
    return rc


def _schema(what: str) -> dict[str, Any]:
    if what == "control":
        from flowact.wire import control_json_schema

        schema: dict[str, Any] = control_json_schema()
        return schema
    from agent.config_schema import config_file_schema

    return config_file_schema()


async def _run(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    overrides: dict[str, Any] = {}
    if args.preview:
        # the page is the sink and the user's input (text box, optional browser microphone)
        overrides.update({"sink": {"type": "preview"}, "input": None})
    if args.output:
        overrides["sink"] = {"type": "file", "path": args.output}
    cfg = load_config(args.config, overrides=overrides)
    sink = cfg.plugins["sink"]
    output = sink.config.model_dump().get("path") if sink.name == "file" else None
    path = args.transcript or (transcript_path(output) if output else None)
    session = AgentSession(cfg)
    with TranscriptLog(path) as transcript:  # prints the conversation live, keeps it beside the MP4
        session.add_observer(transcript)
        async with session:
            if isinstance(session.c.sink, Served) and session.c.sink.url:
                print(f"preview: {session.c.sink.url}  (Ctrl-C to stop)", flush=True)
            if args.preview or cfg.plugin("input") is None and sink.name in ("livekit", "preview"):
                await asyncio.Event().wait()  # live transports: run until interrupted
            await session.run_until_done()
    if path:
        print(f"transcript: {path}")
    _print_turns(session)
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    cfg = load_config(args.config, overrides={
        "input": {"type": "spoken_script", "path": args.script},
        "sink": {"type": "file", "path": args.output},
    })
    session = AgentSession(cfg)
    print(f"demo: portrait {cfg.session.portrait}, writing {args.output} ...\n\nconversation:", flush=True)
    with TranscriptLog(transcript_path(args.output)) as transcript:
        session.add_observer(transcript)
        async with session:
            await _run_with_progress(session)
    print(f"\rwrote {args.output}: {session.metrics.frames_written} frames "
          f"({session.metrics.frames_written / cfg.session.fps:.1f} s), "
          f"time to first frame {session.metrics.ttff_s} s")
    _write_sidecar(args.output, session, transcript.lines)
    _print_turns(session)
    return 0


async def _say(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    cfg = say_config(args.config, args.output, image=args.image)
    session = AgentSession(cfg)
    async with session:
        await session.say(args.text)
        await _run_with_progress(session)
    print(f"\rwrote {args.output}: {session.metrics.frames_written} frames")
    _write_sidecar(args.output, session, [])
    return 0


def say_config(path: str | Path, output: str, *, image: str | None = None) -> AgentConfig:
    """The config `say` runs: the file's session, TTS and generator; no input, no LLM, an MP4 sink.

    `say` speaks the given text, so it builds no LLM (a local LLM section would start a llama.cpp
    server it never uses) and no VAD, ASR, input or control channel.
    """
    overrides: dict[str, Any] = {key: None for key in ("input", "vad", "asr", "llm", "control")}
    overrides.update({"session.realtime": False, "session.idle_tail_s": 0.3, "sink": {"type": "file", "path": output}})
    if image:
        overrides["session.portrait"] = image
    return load_config(path, overrides=overrides)


def _write_sidecar(output: str, session: Any, lines: list[tuple[str, str]]) -> None:
    """`<output>.json` beside the MP4: metrics, per-turn latencies and speech spans, the conversation."""
    if not Path(output).exists():
        return
    data = {
        "fps": session.cfg.fps, "sample_rate": session.cfg.sample_rate,
        "snapshot": session.metrics.snapshot(), "turns": session.metrics.turn_table(),
        "conversation": [{"role": r, "text": t} for r, t in lines],
    }
    Path(output).with_suffix(".json").write_text(json.dumps(data, indent=2))


async def _run_with_progress(session: Any) -> None:
    """`run_until_done` with a progress line (owned task, cancelled and awaited)."""
    progress = asyncio.create_task(_progress(session), name="cli-progress")
    try:
        await session.run_until_done()
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)


async def _progress(session: Any) -> None:
    """A progress line for renders longer than a few seconds."""
    await asyncio.sleep(3.0)
    while True:
        m = session.metrics
        print(f"\r  {m.frames_written / session.cfg.fps:6.1f} s of video, state {session.state.value:<9}",
              end="", file=sys.stderr, flush=True)
        await asyncio.sleep(1.0)


def _print_turns(session: Any) -> None:
    rows = session.metrics.turn_table()
    if not rows:
        return
    feel = ["heard_s", "seen_s"]
    cols = ["endpoint_s", "asr_final", "llm_first_token", "tts_first_audio", "first_frame"]
    print("\nper-turn latency (seconds). heard/seen: from the user's last word to the first avatar audio /")
    print("speaking frame; breakdown: endpoint from the last word, the rest from the endpoint decision")
    print(f"{'turn':>4}  " + "  ".join(f"{c.removesuffix('_s'):>8}" for c in feel) + "  |"
          + "  ".join(f"{c.removesuffix('_s'):>15}" for c in cols))
    for r in rows:
        left = [f"{r[c]:>8.3f}" if c in r else f"{'-':>8}" for c in feel]
        right = [f"{r[c]:>15.3f}" if c in r else f"{'-':>15}" for c in cols]
        print(f"{r['turn']:>4}  " + "  ".join(left) + "  |" + "  ".join(right)
              + ("  (interrupted)" if r.get("interrupted") else ""))


if __name__ == "__main__":
    sys.exit(main())
