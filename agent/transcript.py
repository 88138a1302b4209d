"""The live conversation: printed as lines become final and kept in a JSON-lines file.

`TranscriptLog` is a `SessionObserver`: add it with `session.add_observer(log)`. Every final
transcript event (`on_event("transcript", {"role", "text", "final"})`) is printed (`  user: ...`,
` agent: ...`), tool calls, interruptions and hand-offs as bracketed notes, and, with a `path`,
each transcript line is appended to that file as one JSON object per line
(`{"t": seconds since the log was made, "role": ..., "text": ...}`), flushed at once so the file is
complete up to the last line even if the process is killed. The last `keep` lines stay in memory
for summaries (`lines`).
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from agent.interfaces import SessionObserver
from flowact.clock import Clock, RealClock

__all__ = ["TranscriptLog", "transcript_path"]


def transcript_path(output: str | Path) -> Path:
    """Where the transcript of a session writing `output` goes: `out/x.mp4` -> `out/x.transcript.jsonl`."""
    return Path(output).with_suffix(".transcript.jsonl")


class TranscriptLog(SessionObserver):
    """Prints the final user and agent lines to `echo` and appends them to `path` (JSON lines)."""

    def __init__(
        self, path: str | Path | None = None, *, echo: IO[str] | None = sys.stdout, keep: int = 200,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.echo = echo
        self.clock: Clock = clock or RealClock()
        self._t0 = self.clock.now()
        self._lines: deque[tuple[str, str]] = deque(maxlen=keep)
        self._file: IO[str] | None = None  # opened at the first line: a session that fails leaves no file

    @property
    def lines(self) -> list[tuple[str, str]]:
        """The last `keep` final (role, text) lines, oldest first."""
        return list(self._lines)

    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind in ("tool", "interrupt", "handoff"):
            self._note(kind, payload)
            return
        if kind != "transcript" or not payload.get("final"):
            return
        role, text = str(payload.get("role", "")), str(payload.get("text", "")).strip()
        if not text:
            return
        self._lines.append((role, text))
        if self.echo is not None:
            print(f"{role:>6}: {text}", file=self.echo, flush=True)
        if self.path is not None:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            t = round(self.clock.now() - self._t0, 3)
            self._file.write(json.dumps({"t": t, "role": role, "text": text}, ensure_ascii=False) + "\n")
            self._file.flush()

    def _note(self, kind: str, payload: Mapping[str, Any]) -> None:
        if self.echo is None:
            return
        if kind == "tool":
            failed = "" if payload.get("ok", True) else f" FAILED: {payload.get('error', '')}"
            note = (f"tool {payload.get('name')}({payload.get('arguments', '')}) "
                    f"{float(payload.get('duration_s', 0.0)):.2f} s{failed}")
        else:
            note = f"{kind}: {payload.get('reason', '')}"
        print(f"{'':>8}[{note}]", file=self.echo, flush=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TranscriptLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
