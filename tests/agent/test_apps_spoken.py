"""The support bot as users meet it: spoken questions (a synthetic piper voice) -> VAD -> ASR -> the
shipped local model with its router, tools and knowledge base -> TTS -> avatar, on the real
llama.cpp server, with the conversation kept in SQLite. Each answer must carry its fact."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import AgentSession, load_config
from agent.interfaces import SessionObserver
from agent.record import read_transcript
from tests.fixtures.llm_server import LlmServer, llm_server

__all__ = ["llm_server"]

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.timeout(600), pytest.mark.llm]

QUESTIONS = [  # (spoken line, what the answer must carry)
    ("Hello. Where is my order one two three four?", r"shipped on monday|arrives tomorrow"),
    ("And what about order five six seven eight?", r"being packed|ships today"),
    ("How long does a refund take?", r"\b(5|five)\b.*\b(7|seven)\b|business days"),
]
HANDOFF = "I want to speak to a human, please."


Events = list[tuple[str, dict[str, Any]]]


async def converse(server: LlmServer, tmp_path: Path, lines: list[str]) -> tuple[AgentSession, Events]:
    """One support session over `lines`, spoken; returns the session and its transcript/tool/handoff events."""
    script = tmp_path / "questions.yaml"
    script.write_text(yaml.safe_dump([{"text": q, "pause_s": 0.6} for q in lines]))
    cfg = load_config(ROOT / "configs" / "support_bot.yaml", environ={}, overrides={
        "input": {"type": "spoken_script", "path": str(script)},
        "llm.local_server": None, "llm.base_url": server.base_url, "llm.temperature": 0.0,
        "llm.tool_mode": "router",  # what `auto` picks on the local server (the fixture server is remote to the plugin)
        "llm.first_token_timeout_s": 180.0, "llm.timeout_s": 180.0,
        "tts": {"type": "espeak"}, "sink": {"type": "null"},
        "session.width": 320, "session.height": 180, "session.greeting": "",
        "knowledge.db": str(tmp_path / "kb.sqlite"), "record.db": str(tmp_path / "record.sqlite"),
    })
    session = AgentSession(cfg)
    events: Events = []

    class Recorder(SessionObserver):
        def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
            if kind in ("transcript", "tool", "handoff"):
                events.append((kind, dict(payload)))

    session.add_observer(Recorder())
    async with session:
        await session.run_until_done(tail_s=0.3)
    return session, events


def finals(events: Events, role: str) -> list[str]:
    return [str(p["text"]) for k, p in events if k == "transcript" and p["role"] == role and p["final"]]


async def test_spoken_support_questions_get_their_facts_and_are_kept(llm_server: LlmServer, tmp_path: Path) -> None:
    session, events = await converse(llm_server, tmp_path, [q for q, _ in QUESTIONS])
    agent_lines, user_lines = finals(events, "agent"), finals(events, "user")
    assert len(user_lines) == len(QUESTIONS), user_lines  # one final line per question (pauses merged)
    hits = [bool(re.search(fact, line, re.I)) for (_, fact), line in zip(QUESTIONS, agent_lines, strict=False)]
    assert sum(hits) >= 2, list(zip(user_lines, agent_lines, strict=False))
    for line in agent_lines:  # nothing that looks like tool syntax reached the speech
        assert not re.search(r"functions\.|[{}<>`]|\"\w+\":", line), line
    assert any(k == "tool" and p["name"] == "lookup_order" for k, p in events)
    assert session.services.recorder is not None
    kept = read_transcript(tmp_path / "record.sqlite", session.services.recorder.session_id)
    assert any(t["name"] == "lookup_order" for t in kept["tools"])
    assert len(kept["turns"]) >= 3 and kept["ended"] is not None


async def test_spoken_handoff_request_publishes_the_handoff_with_the_transcript(
    llm_server: LlmServer, tmp_path: Path
) -> None:
    _, events = await converse(llm_server, tmp_path, [HANDOFF])
    handoffs = [p for k, p in events if k == "handoff"]
    assert handoffs, events
    assert any("human" in str(line["text"]).lower() for line in handoffs[0]["transcript"])  # type: ignore[union-attr]
