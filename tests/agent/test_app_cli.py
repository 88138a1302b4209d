"""`flowact-agent kb index|search`, `sessions`, `transcript ID [--json]` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.record import SessionRecorder

FAQ = Path(__file__).resolve().parents[2] / "examples" / "customer_support" / "faq"


def test_kb_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "kb.sqlite")
    assert main(["kb", "index", str(FAQ), "--db", db]) == 0
    assert "indexed 5 files" in capsys.readouterr().out
    assert main(["kb", "search", "how long does express shipping take", "--db", db, "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 to 2 business days" in out  # the passage, and the sentence the bot says
    assert "answer: Express shipping takes 1 to 2 business days and costs 9 euros." in out
    assert main(["kb", "index", str(tmp_path / "nope"), "--db", db]) == 2
    assert "not a folder" in capsys.readouterr().err


async def test_sessions_and_transcript_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "rec.sqlite"
    rec = SessionRecorder(db, session_id="20260101-abc")
    await rec.start()
    rec.on_event("transcript", {"role": "user", "text": "Hello", "final": True})
    rec.on_event("transcript", {"role": "agent", "text": "Hi, how can I help?", "final": True})
    await rec.aclose()
    assert main(["sessions", "--db", str(db)]) == 0
    assert "20260101-abc" in capsys.readouterr().out
    assert main(["transcript", "20260101", "--db", str(db)]) == 0  # a unique prefix is enough
    assert "agent: Hi, how can I help?" in capsys.readouterr().out
    assert main(["transcript", "20260101-abc", "--json", "--db", str(db)]) == 0
    assert [x["role"] for x in json.loads(capsys.readouterr().out)["lines"]] == ["user", "agent"]
