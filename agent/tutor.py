"""The tutor: a lesson plan, quiz grading tolerant to ASR spelling, per-student progress in SQLite.

A lesson plan (YAML) has steps; each step teaches (`teach`, `phrases`) and asks questions with
accepted answers. `Tutor.start()` resumes where the student stopped (progress is kept across
sessions); `Tutor.answer(text)` grades the student's reply (normalized text, then fuzzy match so
"walkt" or "nice to meet you to" from the ASR still count), advances, and returns the line to speak
with praise or correction as intent tags (`[happy] [nod]` / `[concerned]`), plus a `context` the
session may give the LLM instead of speaking the line itself. A reply that asks something of the
tutor instead of answering ("can you repeat?", "I don't understand", "a hint, please", "let's stop",
or any question that is no attempt at the answer) is not graded as wrong: the question is asked
again, the step explained again, a hint given, or the lesson paused with its progress kept.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError

__all__ = ["LessonPlan", "Tutor", "TutorConfig", "TutorTurn", "grade", "normalize"]

_CONTRACTIONS = {"i'm": "i am", "it's": "it is", "don't": "do not", "you're": "you are", "can't": "cannot",
                 "that's": "that is", "what's": "what is", "isn't": "is not", "won't": "will not"}
_FILLERS = frozenset({"um", "uh", "er", "erm", "well", "so", "like", "the", "a", "an", "answer", "is"})
_DONT_KNOW = re.compile(r"\b(i do not know|no idea|not sure|i forgot|dunno|skip|pass|tell me)\b")
# What a student asks of the tutor instead of answering (matched on the lowercased reply, contractions
# expanded): never graded as a wrong answer.
_REPEAT = re.compile(r"\b(repeat|say (that|it) again|again please|pardon|come again|one more time|what did you say|"
                     r"did not (catch|hear)|(tell|ask) me again)\b")
_HINT = re.compile(r"\b(hint|clue)\b")
_EXPLAIN = re.compile(r"\b((do|did) not understand|explain|what does (that|it|this) mean|what do you mean|"
                      r"(do|did) not get it|confused|help me|why)\b")
_STOP = re.compile(r"\b(stop|that is enough|enough for today|goodbye|bye|end the lesson|finish for today|"
                   r"have to go|quit)\b")


class TutorConfig(BaseModel):
    """`tutor:` section: the lesson plan, where progress is kept, who the student is."""

    model_config = ConfigDict(extra="forbid")

    plan: str = Field(description="lesson plan YAML (see examples/tutor/lessons/)")
    db: str = Field("~/.local/share/flowact/tutor.sqlite", description="per-student progress (SQLite)")
    student: str = Field("default", description="student id (progress is resumed per student and lesson)")
    speak: str = Field("line", pattern="^(line|llm)$",
                       description="line: speak the tutor's graded line; llm: give it to the LLM as context")


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ask: str
    accept: list[str] = Field(min_length=1)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    teach: str
    phrases: list[str] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)


class LessonPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str = ""
    steps: list[Step] = Field(min_length=1)
    threshold: float = Field(0.8, gt=0, le=1, description="fuzzy similarity that counts as right")

    @classmethod
    def load(cls, path: str | Path) -> LessonPlan:
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError, ValidationError) as e:
            raise ConfigError(f"lesson plan {path}: {e}") from e


def _expanded(text: str) -> str:
    """Lowercase, contractions expanded ("don't" -> "do not")."""
    t = text.lower().replace("\u2019", "'")
    for short, full in _CONTRACTIONS.items():
        t = re.sub(rf"\b{re.escape(short)}\b", full, t)
    return t


def normalize(text: str) -> str:
    """Lowercase, contractions expanded, punctuation and filler words dropped, spaces collapsed."""
    words = [w for w in re.findall(r"[a-z0-9]+", _expanded(text)) if w not in _FILLERS]
    return " ".join(words)


def grade(reply: str, accepted: list[str], threshold: float = 0.8) -> tuple[str, float]:
    """('right' | 'wrong' | 'unknown', best similarity). An accepted answer inside a longer reply counts."""
    said = normalize(reply)
    if not said or _DONT_KNOW.search(said) or _DONT_KNOW.search(reply.lower()):
        return "unknown", 0.0
    best = 0.0
    for answer in accepted:
        want = normalize(answer)
        if not want:
            continue
        if f" {want} " in f" {said} ":
            return "right", 1.0
        n = len(want.split())
        words = said.split()
        windows = [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))] + [said]
        best = max(best, *(difflib.SequenceMatcher(None, want, w).ratio() for w in windows))
    return ("right" if best >= threshold else "wrong"), best


def _request(reply: str, score: float) -> str | None:
    """What a reply that is not the right answer asks of the tutor: pause, repeat, hint, explain (a
    question that is no attempt at the answer: similarity under 0.5), or None (an answer, graded)."""
    t = _expanded(reply).replace("n't", " not")
    for verdict, pattern in (("pause", _STOP), ("repeat", _REPEAT), ("hint", _HINT), ("explain", _EXPLAIN)):
        if pattern.search(t):
            return verdict
    return "explain" if t.strip().endswith("?") and score < 0.5 else None


@dataclass(frozen=True, slots=True)
class TutorTurn:
    verdict: str  # right | wrong | unknown | teach | done, or the student's request: repeat | hint | explain | pause
    say: str  # the line to speak (intent tags included)
    context: str  # for the LLM: what happened and what to say
    step: int
    question: int


class Tutor:
    """One student's way through one lesson plan, progress kept in SQLite (`db_path`)."""

    def __init__(self, plan: LessonPlan, db_path: str | Path, student: str) -> None:
        self.plan, self.student = plan, student
        path = Path(db_path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)  # created and used from worker threads
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS progress(student TEXT, lesson TEXT, step INTEGER, question INTEGER,"
            " right INTEGER, wrong INTEGER, updated REAL, PRIMARY KEY(student, lesson));"
            "CREATE TABLE IF NOT EXISTS answers(student TEXT, lesson TEXT, step INTEGER, question INTEGER,"
            " reply TEXT, verdict TEXT, score REAL, t REAL);"
        )
        row = self.db.execute("SELECT step, question, right, wrong FROM progress WHERE student=? AND lesson=?",
                              (student, plan.id)).fetchone()
        values: tuple[int, int, int, int] = tuple(row) if row else (0, 0, 0, 0)
        self.step, self.question, self.right, self.wrong = values
        self.resumed = row is not None

    def close(self) -> None:
        self.db.close()

    @property
    def done(self) -> bool:
        return self.step >= len(self.plan.steps)

    def start(self) -> TutorTurn:
        """The opening line: the current step's lesson and question (resumes after a break)."""
        if self.done:
            return TutorTurn("done", "[happy] You have finished this lesson. Well done!", "The lesson is complete.",
                             self.step, self.question)
        intro = "[smile] Welcome back! Let's continue. " if self.resumed and (self.step or self.question) else ""
        return self._present(intro)

    def answer(self, reply: str) -> TutorTurn:
        if self.done:
            return self.start()
        step = self.plan.steps[self.step]
        if not step.questions:
            self._advance()
            return self._present("[nod] ")
        q = step.questions[self.question]
        verdict, score = grade(reply, q.accept, self.plan.threshold)
        if verdict != "right":
            verdict = _request(reply, score) or verdict
        self.db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (self.student, self.plan.id, self.step, self.question, reply, verdict, score, time.time()))
        if verdict in ("pause", "repeat", "hint", "explain"):
            return self._request_turn(verdict, step, q)
        if verdict == "right":
            self.right += 1
            self._advance()
            lead = "[happy] [nod] Well done, that's right! "
        elif verdict == "unknown":
            self.wrong += 1
            self._advance()
            lead = f"[smile] No problem. The answer is: {q.accept[0]}. "
        else:
            self.wrong += 1
            self._save()
            return TutorTurn("wrong", f"[concerned] Not quite. Try again: {q.ask}",
                             f'The student answered "{reply}" to "{q.ask}", which is wrong. Encourage them to '
                             "try again without giving the answer.", self.step, self.question)
        turn = self._present(lead)
        return TutorTurn(verdict, turn.say, turn.context, turn.step, turn.question)

    # --- internals -------------------------------------------------------------------------------
    def _request_turn(self, verdict: str, step: Step, q: Question) -> TutorTurn:
        """The line for a student's request (not an answer): nothing is counted, the question stays."""
        if verdict == "pause":
            say = "[smile] Okay, let's stop here. Your progress is saved, and next time we go on from this question."
            context = "The student wants to stop; progress is saved. Say goodbye warmly."
        elif verdict == "repeat":
            say, context = f"[smile] Sure. {q.ask}", f'The student asked to hear the question again: "{q.ask}".'
        elif verdict == "hint":
            first = q.accept[0].split()
            start = (first[0] if len(first) > 1 else first[0][:2] if first else "").rstrip(",.;:!?")
            say = f'[smile] Here is a hint: it starts with "{start}". {q.ask}'
            context = f'The student asked for a hint; it starts with "{start}". Ask again: "{q.ask}".'
        else:
            say = f"[smile] Let me explain again. {step.teach} {q.ask}"
            context = f"The student did not understand; explain again: {step.teach} Then ask: {q.ask}"
        return TutorTurn(verdict, say, context, self.step, self.question)

    def _present(self, lead: str) -> TutorTurn:
        if self.done:
            return TutorTurn("done", lead + "That was the last question. Great work today!",
                             "The lesson is complete; congratulate the student.", self.step, self.question)
        step = self.plan.steps[self.step]
        if self.question == 0 or not step.questions:
            text = f"{lead}{step.teach} " + (step.questions[0].ask if step.questions else "Say: " + step.phrases[0]
                                             if step.phrases else "")
        else:
            text = f"{lead}{step.questions[self.question].ask}"
        return TutorTurn("teach", text.strip(), f"Lesson step {step.id}: {step.teach}", self.step, self.question)

    def _advance(self) -> None:
        step = self.plan.steps[self.step]
        self.question += 1
        if self.question >= len(step.questions):
            self.step, self.question = self.step + 1, 0
        self._save()

    def _save(self) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO progress VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (self.student, self.plan.id, self.step, self.question, self.right, self.wrong,
                             time.time()))
