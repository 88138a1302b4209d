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

# Ten questions of one support session, phrased so tiny.en hears them alike with any piper voice;
# each answer must carry its fact (the order tool's line, the knowledge base's sentence, the hand-off).
QUESTIONS = [  # (spoken line, what the answer must carry)
    ("Hello. Where is my order one two three four?", r"1234.*(shipped on monday|arrives tomorrow)"),
    ("And what about order five six seven eight?", r"5678.*(being packed|ships today)"),
    ("Can you tell me if order four three two one is on its way?", r"4321.*(delayed|friday)"),
    ("Please check order twelve thirty four.", r"1234.*(shipped on monday|arrives tomorrow)"),
    ("Could you look up order nine nine nine nine?", r"could not find an order number \d+"),  # as heard
    ("Please tell me how long a refund takes.", r"\b(5|five) to (7|seven) business days"),
    ("Do you accept PayPal?", r"^(?!.*\b(not|no|don't)\b).*paypal"),
    ("How long does standard shipping take?", r"\b(3|three) to (5|five) business days"),
    ("What is your return policy?", r"\b(30|thirty) days"),
    ("I want to speak to a human, please.", r"colleague"),
]
HANDOFF_AT = 9  # the last question asks for a person: the hand-off event carries the transcript so far
# The goal is >= 9/10 with the shipped 0.5B model. Before this wave's fixes: 7/10, 7/10, 8/10 on a
# shared 2-core box at load 15-20 (tiny.en clipping first words, the model wording the return policy
# without "30 days", a router slip). After them (Silero's pre-roll counted from the first voiced window,
# knowledge quoted): 9/10 at load 25-30, the miss "if order four three two one" heard as "a 4.4321".
# The floor is one below what that run met.
MIN_HITS = 8


Events = list[tuple[str, dict[str, Any]]]


async def converse(server: LlmServer, tmp_path: Path, lines: list[str]) -> tuple[AgentSession, Events]:
    """One support session over `lines`, spoken; returns the session and its transcript/tool/handoff events."""
    script = tmp_path / "questions.yaml"
    script.write_text(yaml.safe_dump([{"text": q, "pause_s": 1.5} for q in lines]))  # a breath after each answer
    cfg = load_config(ROOT / "configs" / "support_bot.yaml", environ={}, overrides={
        "input": {"type": "spoken_script", "path": str(script),
                  "reply_timeout_s": 900.0},  # a loaded box answers late: never speak over the answer
        "llm.local_server": None, "llm.base_url": server.base_url, "llm.temperature": 0.0,
        # what `auto` picks on the local server (the fixture server is remote to the plugin): the router, and
        # the knowledge base's sentences spoken as written (without it the 0.5B model worded the return
        # policy and dropped its "30 days")
        "llm.tool_mode": "router", "llm.quote_knowledge": "always",
        "llm.first_token_timeout_s": 180.0, "llm.timeout_s": 180.0,
        "tts": {"type": "espeak", "timeout_s": 300.0}, "asr.timeout_s": 300.0,  # slow on a loaded box, not dead
        "sink": {"type": "null"},
        "session.width": 320, "session.height": 180, "session.greeting": "",
        "knowledge.db": str(tmp_path / "kb.sqlite"), "record.db": str(tmp_path / "record.sqlite"),
    })
    session = AgentSession(cfg)
    events: Events = []

    class Recorder(SessionObserver):
        def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
            if kind in ("transcript", "tool", "handoff"):
                events.append((kind, dict(payload)))
            if kind == "transcript" and payload.get("final"):  # live, for a run that times out
                print(f"{payload['role']}: {payload['text']}", flush=True)

    session.add_observer(Recorder())
    async with session:
        await session.run_until_done(tail_s=0.3)
    return session, events


def finals(events: Events, role: str) -> list[str]:
    return [str(p["text"]) for k, p in events if k == "transcript" and p["role"] == role and p["final"]]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ten questions; ~3 min on a quiet box, far more on a shared 2-core one
async def test_ten_spoken_support_questions_carry_their_facts_and_are_kept(
    llm_server: LlmServer, tmp_path: Path
) -> None:
    session, events = await converse(llm_server, tmp_path, [q for q, _ in QUESTIONS])
    agent_lines, user_lines = finals(events, "agent"), finals(events, "user")
    pairs = list(zip(user_lines, agent_lines, strict=False))
    assert len(user_lines) == len(QUESTIONS), pairs  # one final line per question (pauses merged)
    hits = [bool(re.search(fact, line, re.I)) for (_, fact), line in zip(QUESTIONS, agent_lines, strict=False)]
    print(f"spoken support hit rate: {sum(hits)}/{len(QUESTIONS)}")
    for (asked, fact), (heard, said), hit in zip(QUESTIONS, pairs, hits, strict=False):
        print(f"{'HIT ' if hit else 'MISS'} {asked!r} heard {heard!r} -> {said!r} (needs {fact})")
    assert sum(hits) >= MIN_HITS, pairs
    for line in agent_lines:  # nothing that looks like tool syntax reached the speech
        assert not re.search(r"functions\.|[{}<>`]|\"\w+\":", line), line
    tools = [p["name"] for k, p in events if k == "tool"]
    # a misheard number may end in a clarifying question instead of a lookup (the floor allows 3 misses)
    assert tools.count("lookup_order") >= 3 and "handoff" in tools, tools
    handoffs = [p for k, p in events if k == "handoff"]
    assert len(handoffs) == 1, handoffs
    said_before = [str(line["text"]).lower() for line in handoffs[0]["transcript"]]
    assert any("human" in line for line in said_before) and len(said_before) >= 2 * len(QUESTIONS) - 1, said_before
    assert "1234" in said_before[1], said_before  # from the first answer on
    assert session.services.recorder is not None
    kept = read_transcript(tmp_path / "record.sqlite", session.services.recorder.session_id)
    assert [t["name"] for t in kept["tools"]] == tools  # every tool call kept, in order
    assert len(kept["turns"]) >= len(QUESTIONS) and kept["ended"] is not None
    assert [e["kind"] for e in kept["events"] if e["kind"] == "handoff"] == ["handoff"]
