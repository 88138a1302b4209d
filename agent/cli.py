"""`flowact-agent` (also `python -m agent`): run, demo, say, check-config, schema.

User errors (bad config, missing/corrupt portrait, unreadable audio) print one line starting with
`error:` and exit with code 2; no traceback, and no half-written output file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.app_cli import add_app_commands, run_app_command
from agent.config import AgentConfig, load_config, parse_config
from agent.errors import UserError
from flowact.errors import FlowActError

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "local.yaml"
DEMO_SCRIPT = ROOT / "configs" / "demo_script.yaml"
EXIT_USER_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowact-agent", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a session from a config file")
    run.add_argument("--config", "-c", default=str(DEFAULT_CONFIG))
    run.add_argument("--preview", action="store_true", help="serve the live preview page instead of the sink")
    run.add_argument("--output", "-o", help="MP4 path (overrides sink.path of a file sink)")

    demo = sub.add_parser("demo", help="offline demo: scripted support conversation -> out/demo.mp4")
    demo.add_argument("--config", "-c", default=str(DEFAULT_CONFIG))
    demo.add_argument("--script", default=str(DEMO_SCRIPT))
    demo.add_argument("--output", "-o", default="out/demo.mp4")

    say = sub.add_parser("say", help="one-shot: render a portrait speaking a text to an MP4")
    say.add_argument("--image", "-i", help="portrait (default: the bundled one)")
    say.add_argument("--text", "-t", required=True)
    say.add_argument("--output", "-o", default="out/say.mp4")
    say.add_argument("--config", "-c", default=str(DEFAULT_CONFIG))

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
    except FlowActError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR if isinstance(e, UserError) or not e.retryable else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


def _schema(what: str) -> dict[str, Any]:
    if what == "control":
        from flowact.wire import control_json_schema

        schema: dict[str, Any] = control_json_schema()
        return schema
    return AgentConfig.model_json_schema()


def _raw_config(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise UserError(f"{p}: the top level must be a mapping of sections")
    return raw


async def _run(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    raw = _raw_config(args.config)
    if args.preview:
        # the page is the sink and the user's input (text box, optional browser microphone)
        raw["sink"] = {"type": "preview"}
        raw.pop("input", None)
    if args.output:
        raw["sink"] = {"type": "file", "path": args.output}
    cfg = parse_config(raw, source=args.config)
    session = AgentSession(cfg)
    async with session:
        url = getattr(session.c.sink, "url", None)
        if url:
            print(f"preview: {url}  (Ctrl-C to stop)", flush=True)
        if args.preview or cfg.plugin("input") is None and cfg.plugins["sink"].name in ("livekit", "preview"):
            await asyncio.Event().wait()  # live transports: run until interrupted
        await session.run_until_done()
    _print_turns(session)
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    raw = _raw_config(args.config)
    raw["input"] = {"type": "spoken_script", "path": args.script}
    raw["sink"] = {"type": "file", "path": args.output}
    cfg = parse_config(raw, source=args.config)
    session = AgentSession(cfg)
    transcript = _Transcript()
    session.add_observer(transcript)
    print(f"demo: portrait {cfg.session.portrait}, writing {args.output} ...", flush=True)
    async with session:
        await _run_with_progress(session)
    print(f"\rwrote {args.output}: {session.metrics.frames_written} frames "
          f"({session.metrics.frames_written / cfg.session.fps:.1f} s), "
          f"time to first frame {session.metrics.ttff_s} s")
    _write_sidecar(args.output, session, transcript.lines)
    print("\nconversation:")
    for role, text in transcript.lines:
        print(f"  {role:>5}: {text}")
    _print_turns(session)
    return 0


class _Transcript:
    """Collects the final user and agent lines (bounded) for the demo's summary."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "transcript" and payload.get("final") and payload.get("text") and len(self.lines) < 200:
            self.lines.append((str(payload["role"]), str(payload["text"])))


async def _say(args: argparse.Namespace) -> int:
    from agent.session import AgentSession

    raw = _raw_config(args.config)
    if args.image:
        raw.setdefault("session", {})["portrait"] = args.image
    for key in ("input", "vad", "asr", "control"):
        raw.pop(key, None)
    raw.setdefault("session", {}).update({"realtime": False, "idle_tail_s": 0.3})
    raw["sink"] = {"type": "file", "path": args.output}
    raw.setdefault("llm", {"type": "scripted"})
    cfg = parse_config(raw, source=args.config)
    session = AgentSession(cfg)
    async with session:
        await session.say(args.text)
        await _run_with_progress(session)
    print(f"\rwrote {args.output}: {session.metrics.frames_written} frames")
    _write_sidecar(args.output, session, [])
    return 0


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
    cols = ["asr_final", "llm_first_token", "tts_first_audio", "first_frame"]
    print("\nper-turn latency (seconds from end of user speech):")
    print(f"{'turn':>4}  " + "  ".join(f"{c:>15}" for c in cols))
    for r in rows:
        cells = [f"{r[c]:>15.3f}" if c in r else f"{'-':>15}" for c in cols]
        print(f"{r['turn']:>4}  " + "  ".join(cells) + ("  (interrupted)" if r.get("interrupted") else ""))


if __name__ == "__main__":
    sys.exit(main())
