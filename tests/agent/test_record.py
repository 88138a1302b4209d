"""The kept record: SQLite in WAL mode written by one task; survives kill -9 after a turn; CLI views."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.record import SessionRecorder, connect, handoff_event, read_transcript, sessions_command, transcript_command

ROOT = Path(__file__).resolve().parents[2]


async def test_a_session_is_recorded_and_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "record.sqlite"
    rec = SessionRecorder(db, session_id="s1")
    await rec.start()
    rec.on_event("transcript", {"role": "user", "text": "Where is 1234?", "final": False})  # partial: not kept
    rec.on_event("transcript", {"role": "user", "text": "Where is my order 1234?", "final": True})
    rec.on_event("tool", {"name": "lookup_order", "arguments": '{"order_id": "1234"}', "result": "shipped",
                          "ok": True, "duration_s": 0.25})
    rec.on_event("transcript", {"role": "agent", "text": "It shipped.", "final": True})
    rec.on_event("turn", {"event": "turn", "turn": 1, "interrupted": False, "user_end_to_first_frame_s": 0.9})
    rec.on_event("transcript", {"role": "user", "text": "A person please", "final": True})
    rec.on_event("interrupt", {"turn": 2, "reason": "barge-in"})
    payload = handoff_event(rec, turn=2, reason="user asked for a person")
    rec.on_event("handoff", payload)
    await rec.aclose()
    assert [x["text"] for x in payload["transcript"]] == ["Where is my order 1234?", "It shipped.", "A person please"]
    data = read_transcript(db, "s1")
    assert [(x["role"], x["text"], x["turn"]) for x in data["lines"]] == [
        ("user", "Where is my order 1234?", 1), ("agent", "It shipped.", 1), ("user", "A person please", 2)]
    assert data["tools"][0]["name"] == "lookup_order" and data["tools"][0]["duration_s"] == 0.25
    assert data["turns"][0]["user_end_to_first_frame_s"] == 0.9 and data["ended"] is not None
    assert [e["kind"] for e in data["events"]] == ["interrupt", "handoff"]
    assert sessions_command(str(db)) == 0 and "s1" in capsys.readouterr().out
    assert transcript_command(str(db), "s1") == 0
    out = capsys.readouterr().out
    assert "user: Where is my order 1234?" in out and "tool lookup_order" in out and "handoff" in out
    assert transcript_command(str(db), "s1", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "s1"
    assert transcript_command(str(db), "nope") == 1


async def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path / "r.sqlite", queue_max=2)
    await rec.start()
    for i in range(50):  # no await in between: the writer cannot run
        rec.on_event("transcript", {"role": "user", "text": f"line {i}", "final": True})
    assert rec.dropped == 48
    await rec.aclose()
    assert len(read_transcript(tmp_path / "r.sqlite", rec.session_id)["lines"]) == 2


def test_the_record_survives_kill_9_after_a_turn(tmp_path: Path) -> None:
    db = tmp_path / "record.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "agent" / "record_worker.py"), str(db)],
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "TURN_DONE"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    data = read_transcript(db, "killed-session")
    assert [x["text"] for x in data["lines"]] == ["Where is my order 1234?", "Order 1234 shipped on Monday."]
    assert data["tools"][0]["result"] == "shipped" and data["turns"][0]["turn"] == 1
    assert data["ended"] is None  # killed: the session was never closed


SESSION_YAML = """
session: {portrait: %s, greeting: "", width: 320, height: 180}
input: {type: stdin}
llm:
  type: scripted
  rules: [{match: "1234", reply: "Order 1234 shipped on Monday."}]
tts: {type: espeak}
generator: {type: portrait, motion: procedural}
sink: {type: "null"}
record: {db: %s}
"""


def test_a_running_session_killed_after_a_turn_keeps_the_turn(tmp_path: Path) -> None:
    """`flowact-agent run` (typed, the record on), killed with SIGKILL after its first answer while it
    waits for the next line: the record already holds the whole turn."""
    db = tmp_path / "record.sqlite"
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(SESSION_YAML % (ROOT / "examples" / "assets" / "grace_hopper.jpg", db))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("Where is my order 1234?\n")
        proc.stdin.flush()  # stdin stays open: the session waits for the next line
        deadline = time.monotonic() + 240  # a loaded box starts the session slowly
        data: dict[str, object] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            ids = [r[0] for r in connect(db).execute("SELECT id FROM sessions")] if db.exists() else []
            data = read_transcript(db, ids[0]) if ids else {}
            if data.get("turns"):
                break
            time.sleep(0.5)
        assert data.get("turns"), (proc.poll(), data)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    ids = [r[0] for r in connect(db).execute("SELECT id FROM sessions")]
    kept = read_transcript(db, ids[0])
    assert [(x["role"], x["text"]) for x in kept["lines"]] == [
        ("user", "Where is my order 1234?"), ("agent", "Order 1234 shipped on Monday.")]
    assert kept["turns"][0]["turn"] == 1 and kept["ended"] is None  # killed: never closed


def test_transcript_log_shows_the_live_conversation_with_tools_and_handoffs() -> None:
    import io

    from agent.transcript import TranscriptLog

    out = io.StringIO()
    p = TranscriptLog(echo=out)
    p.on_event("transcript", {"role": "user", "text": "Where is 1234?", "final": False})
    p.on_event("transcript", {"role": "user", "text": "Where is 1234?", "final": True})
    p.on_event("tool", {"name": "lookup_order", "arguments": "{}", "ok": False, "error": "timeout", "duration_s": 5})
    p.on_event("handoff", {"reason": "asked for a person"})
    assert out.getvalue().splitlines() == [
        "  user: Where is 1234?", "        [tool lookup_order({}) 5.00 s FAILED: timeout]",
        "        [handoff: asked for a person]",
    ]
