"""TranscriptLog: final lines printed and written as JSON lines, flushed at once; partials ignored."""

from __future__ import annotations

import io
import json
from pathlib import Path

from agent.interfaces import SessionObserver
from agent.transcript import TranscriptLog, transcript_path
from flowact.clock import FakeClock


def test_final_lines_are_printed_and_flushed_to_the_file(tmp_path: Path) -> None:
    clock, echo = FakeClock(), io.StringIO()
    path = transcript_path(tmp_path / "out" / "session.mp4")
    assert path == tmp_path / "out" / "session.transcript.jsonl"
    log = TranscriptLog(path, echo=echo, clock=clock, keep=2)
    assert isinstance(log, SessionObserver) and not path.exists()  # nothing said: no file
    log.on_event("transcript", {"role": "user", "text": "Hel", "final": False})
    log.on_event("state", {"state": "thinking"})
    log.on_event("transcript", {"role": "user", "text": " Hello. ", "final": True})
    clock.advance(1.5)
    log.on_event("transcript", {"role": "agent", "text": "Hi!", "final": True})
    # readable before close: every line is flushed as it comes
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert rows == [{"t": 0.0, "role": "user", "text": "Hello."}, {"t": 1.5, "role": "agent", "text": "Hi!"}]
    assert echo.getvalue() == "  user: Hello.\n agent: Hi!\n"
    log.on_event("transcript", {"role": "user", "text": "Bye.", "final": True})
    assert log.lines == [("agent", "Hi!"), ("user", "Bye.")]  # bounded memory
    log.close()
    assert len(path.read_text().splitlines()) == 3


def test_without_a_path_it_only_prints() -> None:
    echo = io.StringIO()
    with TranscriptLog(echo=echo) as log:
        log.on_event("transcript", {"role": "agent", "text": "Hi.", "final": True})
    assert echo.getvalue() == " agent: Hi.\n" and log.path is None
