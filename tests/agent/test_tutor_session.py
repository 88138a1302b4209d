"""The tutor as a student meets it: spoken answers (a synthetic piper voice) -> VAD -> ASR -> graded
against the lesson's accepted answers (tolerant to ASR spelling) -> praise or correction on the face
-> the next question; the next session resumes where the student stopped. Six graded turns: right,
wrong, "I don't know"; then, resumed, right, wrong, right to the lesson's end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import AgentSession, load_config
from agent.interfaces import SessionObserver
from flowact.types import EXPRESSIONS

ROOT = Path(__file__).resolve().parents[2]
HAPPY, CONCERNED = EXPRESSIONS.index("happy"), EXPRESSIONS.index("concerned")
pytestmark = pytest.mark.timeout(900)  # two spoken sessions; a loaded box takes minutes


class Lines(SessionObserver):
    def __init__(self) -> None:
        self.agent: list[str] = []
        self.user: list[str] = []
        self.expressions: list[Any] = []

    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == "transcript" and payload.get("final"):
            (self.agent if payload["role"] == "agent" else self.user).append(str(payload["text"]))

    def on_control(self, chunk: Any) -> None:
        self.expressions.append(chunk.expressions.max(axis=0))


async def lesson(tmp_path: Path, answers: list[str], name: str) -> Lines:
    script = tmp_path / f"{name}.yaml"
    script.write_text(yaml.safe_dump([{"text": a, "pause_s": 0.6} for a in answers]))
    cfg = load_config(ROOT / "configs" / "tutor.yaml", environ={}, overrides={
        "input": {"type": "spoken_script", "path": str(script)},
        "llm": {"type": "scripted"},  # `speak: line`: the tutor's graded line is spoken, no LLM call
        "tts": {"type": "espeak", "timeout_s": 300.0}, "asr.timeout_s": 300.0,  # slow on a loaded box, not dead
        "sink": {"type": "null"},
        "session.width": 320, "session.height": 180,
        "tutor.db": str(tmp_path / "tutor.sqlite"), "tutor.student": "ana", "record": None,
    })
    session = AgentSession(cfg)
    lines = Lines()
    session.add_observer(lines)
    async with session:
        await session.run_until_done(tail_s=0.3)
    return lines


async def test_spoken_quiz_is_graded_shown_on_the_face_and_resumed(tmp_path: Path) -> None:
    first = await lesson(tmp_path, ["Nice to meet you too.", "I like pizza.", "I don't know."], "one")
    assert "Nice to meet you" in first.agent[0]  # the greeting is the lesson's first step
    graded = first.agent[1:]
    assert len(graded) == 3, first.agent
    assert graded[0].startswith("Well done") and "How are you" in graded[0]  # right -> praise, next question
    assert graded[1].startswith("Not quite") and "How are you" in graded[1]  # wrong -> try again
    assert "The answer is" in graded[2]  # "I don't know" -> the answer, then the next step
    peaks = [float(e[HAPPY]) for e in first.expressions]
    assert max(peaks) > 0.3  # praise showed on the face
    assert max(float(e[CONCERNED]) for e in first.expressions) > 0.3  # so did the correction
    # the next session: resumed at step 2; a first word tiny.en used to clip ("I played" -> "plate")
    second = await lesson(tmp_path, ["I played football yesterday.", "I said hello.", "I talked to my friend."], "two")
    assert second.agent[0].startswith("Welcome back") and "play" in second.agent[0], second.agent  # resumed
    graded = second.agent[1:]
    assert len(graded) == 3, (second.user, second.agent)
    assert graded[0].startswith("Well done") and '"talk"' in graded[0], (second.user, graded)  # next question
    assert graded[1].startswith("Not quite") and '"talk"' in graded[1], (second.user, graded)
    assert graded[2].startswith("Well done") and "last question" in graded[2], (second.user, graded)
