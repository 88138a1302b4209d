"""A kept record of every conversation: SQLite (WAL), one writer task, a bounded queue.

`SessionRecorder` is a `SessionObserver`: the session's events (`transcript`, `turn`, `interrupt`,
`error`, `tool`, `handoff`, ...) are queued without blocking and written by one task, each event in
its own transaction (WAL mode, synchronous=NORMAL: a process killed after a turn ended loses
nothing already written). Tables: sessions, lines (transcript), turns (per-turn latency record),
tool_calls (arguments, result, duration), events (everything, JSON). A full queue drops the event
and counts it (`dropped`), never blocks the session.

`flowact-agent sessions` / `flowact-agent transcript ID [--json]` are `sessions_command` and
`transcript_command`. `handoff_event(...)` builds the payload of the `handoff` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.interfaces import SessionObserver

__all__ = [
    "RecordConfig", "SessionRecorder", "handoff_event", "read_transcript",
    "sessions_command", "transcript_command",
]

log = logging.getLogger("agent.record")
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, started REAL, ended REAL, name TEXT);
CREATE TABLE IF NOT EXISTS lines(session_id TEXT, seq INTEGER, t REAL, turn INTEGER, role TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS turns(session_id TEXT, turn INTEGER, t REAL, interrupted INTEGER, record TEXT);
CREATE TABLE IF NOT EXISTS tool_calls(session_id TEXT, turn INTEGER, t REAL, name TEXT, arguments TEXT,
    result TEXT, ok INTEGER, error TEXT, duration_s REAL);
CREATE TABLE IF NOT EXISTS events(session_id TEXT, t REAL, kind TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS lines_by_session ON lines(session_id, seq);
"""
RECENT_LINES = 200  # kept in memory for the hand-off payload


class RecordConfig(BaseModel):
    """`record:` section: where conversations are kept."""

    model_config = ConfigDict(extra="forbid")

    db: str = Field("~/.local/share/flowact/record.sqlite", description="SQLite file (WAL)")
    queue_max: int = Field(1000, ge=10, le=100_000, description="events waiting for the writer; more are dropped")



def connect(db_path: str | Path) -> sqlite3.Connection:
    path = Path(db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class SessionRecorder(SessionObserver):
    """Observer -> SQLite. `await start()`, attach with `session.add_observer(rec)`, `await aclose()`."""

    def __init__(self, db_path: str | Path, *, session_id: str | None = None, name: str = "",
                 queue_max: int = 1000, now: Any = time.time) -> None:
        self.db_path = db_path
        self.session_id = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.name = name
        self._now = now  # wall-clock timestamps for the record (not session logic)
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(maxsize=queue_max)
        self._task: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._seq = 0
        self._turn = 0
        self.dropped = 0
        self.written = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LINES)

    async def start(self) -> None:
        self._db = await asyncio.to_thread(connect, self.db_path)
        await asyncio.to_thread(self._write, "session_start", {"name": self.name})
        self._task = asyncio.create_task(self._writer(), name=f"record-{self.session_id}")

    async def drain(self) -> None:
        """Wait until every queued event is committed."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        if self._db is not None:
            await asyncio.to_thread(self._write, "session_end", {})
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)
        if self.dropped:
            log.warning("record: %d events dropped (queue full)", self.dropped)

    # --- SessionObserver -------------------------------------------------------------------------
    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == "transcript" and not payload.get("final", True):
            return  # partial transcripts are not kept
        data = dict(payload)
        data["_t"] = self._now()
        if kind == "transcript" and data.get("text"):
            self.recent.append({"role": data.get("role", ""), "text": data["text"], "t": data["_t"]})
        try:
            self._queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            self.dropped += 1

    # --- writer ----------------------------------------------------------------------------------
    async def _writer(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                try:
                    await asyncio.to_thread(self._write, *item)
                except sqlite3.Error as e:  # a full disk must not end the session
                    log.error("record: cannot write %s: %s", item[0], e)
            finally:
                self._queue.task_done()

    def _write(self, kind: str, data: dict[str, Any]) -> None:
        db = self._db
        assert db is not None
        sid, t = self.session_id, data.pop("_t", self._now())
        with db:  # one transaction per event
            if kind == "session_start":
                db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, NULL, ?)", (sid, t, data.get("name", "")))
                return
            if kind == "session_end":
                db.execute("UPDATE sessions SET ended=? WHERE id=?", (t, sid))
                return
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (sid, t, kind, json.dumps(data, default=str)))
            if kind == "transcript" and data.get("text"):
                if data.get("role") == "user":
                    self._turn += 1
                self._seq += 1
                db.execute("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?)",
                           (sid, self._seq, t, data.get("turn", self._turn), data.get("role", ""), data["text"]))
            elif kind == "turn":
                db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                           (sid, data.get("turn", 0), t, int(bool(data.get("interrupted"))), json.dumps(data)))
            elif kind == "tool":
                db.execute("INSERT INTO tool_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (sid, data.get("turn", self._turn), t, data.get("name", ""), data.get("arguments", ""),
                            data.get("result", ""), int(bool(data.get("ok", True))), data.get("error", ""),
                            float(data.get("duration_s", 0.0))))
        self.written += 1


def handoff_event(recorder: SessionRecorder | None, *, turn: int, reason: str, summary: str = "") -> dict[str, Any]:
    """Payload of the `handoff` event: who, why, and the transcript so far (bounded)."""
    return {
        "session_id": recorder.session_id if recorder else "",
        "turn": turn,
        "reason": reason,
        "summary": summary,
        "transcript": list(recorder.recent) if recorder else [],
    }


# --- reading -------------------------------------------------------------------------------------
def read_transcript(db_path: str | Path, session_id: str) -> dict[str, Any]:
    db = sqlite3.connect(str(Path(db_path).expanduser()))
    try:
        row = db.execute("SELECT id, started, ended, name FROM sessions WHERE id=? OR id LIKE ?",
                         (session_id, session_id + "%")).fetchone()
        if row is None:
            return {}
        sid = row[0]
        lines = [{"seq": s, "t": t, "turn": tu, "role": r, "text": x} for s, t, tu, r, x in
                 db.execute("SELECT seq, t, turn, role, text FROM lines WHERE session_id=? ORDER BY seq", (sid,))]
        tools = [{"turn": tu, "t": t, "name": n, "arguments": a, "result": r, "ok": bool(ok), "error": e,
                  "duration_s": d} for tu, t, n, a, r, ok, e, d in
                 db.execute("SELECT turn, t, name, arguments, result, ok, error, duration_s FROM tool_calls "
                            "WHERE session_id=? ORDER BY t", (sid,))]
        turns = [json.loads(r) for (r,) in db.execute("SELECT record FROM turns WHERE session_id=? ORDER BY t", (sid,))]
        events = [{"t": t, "kind": k, **json.loads(p)} for t, k, p in db.execute(
            "SELECT t, kind, payload FROM events WHERE session_id=? AND kind IN ('interrupt', 'error', 'handoff') "
            "ORDER BY t", (sid,))]
        return {"id": sid, "started": row[1], "ended": row[2], "name": row[3], "lines": lines, "tools": tools,
                "turns": turns, "events": events}
    finally:
        db.close()


def sessions_command(db_path: str) -> int:
    """`flowact-agent sessions`: one line per recorded session, newest first."""
    if not Path(db_path).expanduser().is_file():
        print(f"no record at {db_path}")
        return 1
    db = sqlite3.connect(str(Path(db_path).expanduser()))
    with contextlib.closing(db):
        rows = db.execute(
            "SELECT s.id, s.started, s.ended, (SELECT count(*) FROM lines l WHERE l.session_id=s.id),"
            " (SELECT count(*) FROM turns u WHERE u.session_id=s.id) FROM sessions s ORDER BY s.started DESC"
        ).fetchall()
    for sid, started, ended, n_lines, n_turns in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        state = "ended" if ended else "open/killed"
        print(f"{sid}  {when}  {n_turns} turns  {n_lines} lines  {state}")
    return 0


def transcript_command(db_path: str, session_id: str, *, as_json: bool = False) -> int:
    """`flowact-agent transcript ID [--json]`: the conversation, tool calls and interruptions."""
    data = read_transcript(db_path, session_id) if Path(db_path).expanduser().is_file() else {}
    if not data:
        print(f"no session {session_id!r} in {db_path}")
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"session {data['id']}")
    for line in data["lines"]:
        print(f"[{time.strftime('%H:%M:%S', time.localtime(line['t']))}] {line['role']:>5}: {line['text']}")
    for tool in data["tools"]:
        status = "ok" if tool["ok"] else f"failed: {tool['error']}"
        print(f"  tool {tool['name']}({tool['arguments']}) -> {tool['result'][:80]} "
              f"({tool['duration_s']:.2f} s, {status})")
    for ev in data["events"]:
        print(f"  {ev['kind']}: {ev.get('reason') or ev.get('error') or ''}")
    return 0
