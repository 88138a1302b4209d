"""The tutor: a lesson plan, grading tolerant to ASR spelling, progress kept across sessions (resume)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.intents import IntentParser
from agent.tutor import LessonPlan, Tutor, grade, normalize

PLAN = Path(__file__).resolve().parents[2] / "examples" / "tutor" / "lessons" / "english_basics.yaml"


@pytest.mark.parametrize(("reply", "verdict"), [
    ("Nice to meet you too.", "right"),
    ("nice to meet you to", "right"),  # ASR homophone
    ("Um, nice to meat you too!", "right"),  # ASR spelling
    ("Well, I would say nice to meet you too", "right"),  # inside a longer reply
    ("Goodbye", "wrong"),
    ("I don't know", "unknown"),
    ("", "unknown"),
])
def test_grading_is_tolerant_to_asr_spelling(reply: str, verdict: str) -> None:
    assert grade(reply, ["nice to meet you too"])[0] == verdict
    assert normalize("I'm FINE, thank you!") == "i am fine thank you"


def test_a_lesson_with_right_wrong_unknown_and_resume(tmp_path: Path) -> None:
    plan = LessonPlan.load(PLAN)
    db = tmp_path / "progress.sqlite"
    t = Tutor(plan, db, "ana")
    opening = t.start()
    assert "Nice to meet you" in opening.say and opening.verdict == "teach"
    r = t.answer("nice to meet you to")
    assert r.verdict == "right" and r.say.startswith("[happy] [nod]") and "How are you" in r.say
    r = t.answer("I am sleeping")
    assert r.verdict == "wrong" and r.say.startswith("[concerned]") and "How are you" in r.say
    r = t.answer("I'm fine thank you")
    assert r.verdict == "right" and "past tense" in r.say.lower() and "play" in r.say
    t.close()
    # next session: resumes at step 2, question 1
    t2 = Tutor(plan, db, "ana")
    again = t2.start()
    assert again.say.startswith("[smile] Welcome back!") and '"play"' in again.say and (t2.step, t2.question) == (1, 0)
    r = t2.answer("I don't know")
    assert r.verdict == "unknown" and "played" in r.say and "talk" in r.say
    r = t2.answer("I think it is talked.")
    assert r.verdict == "right" and r.say.endswith("Great work today!") and t2.done
    assert (t2.right, t2.wrong) == (3, 2)
    for line in (opening.say, r.say):
        clean, tags = IntentParser().feed(line)
        assert "[" not in clean
    t2.close()
    other = Tutor(plan, db, "ben")  # another student starts at the beginning
    assert not other.resumed and other.start().say == opening.say
    other.close()


@pytest.mark.parametrize(("reply", "verdict", "says"), [
    ("Can you repeat that?", "repeat", '[smile] Sure. How do you answer "How are you?"'),
    ("Sorry, I didn't catch that.", "repeat", "Sure."),
    ("I don't understand.", "explain", "Let me explain again."),
    ("What does that mean?", "explain", "Let me explain again."),
    ("Why do people say that?", "explain", "Let me explain again."),  # a question, no attempt at the answer
    ("Can I have a hint?", "hint", 'it starts with "I\'m". How do you answer'),
    ("Let's stop, I have to go.", "pause", "Your progress is saved"),
    ("I am sleeping", "wrong", "Not quite."),  # an answer, graded
    ("I'm fine, thank you?", "right", "Well done"),  # an attempt that is right counts, question mark or not
])
def test_a_request_instead_of_an_answer_is_not_graded(tmp_path: Path, reply: str, verdict: str, says: str) -> None:
    """A student who asks to hear the question again, for an explanation or a hint, or to stop is
    answered as asked, and none of it counts as a wrong answer: the question stays where it was."""
    t = Tutor(LessonPlan.load(PLAN), tmp_path / "p.sqlite", "ana")
    t.start()
    t.answer("nice to meet you too")  # on to "How do you answer 'How are you?'" (step 0, question 1)
    r = t.answer(reply)
    assert r.verdict == verdict and says in r.say, r
    if verdict == "explain":
        assert r.say.endswith('How do you answer "How are you?"') and "Nice to meet you" in r.say
    if verdict in ("repeat", "explain", "hint", "pause"):
        assert (t.step, t.question, t.right, t.wrong) == (0, 1, 1, 0)
        clean, _ = IntentParser().feed(r.say)
        assert "[" not in clean
    t.close()


def test_bad_lesson_plan_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsteps: []\n")
    with pytest.raises(ConfigError, match="lesson plan"):
        LessonPlan.load(bad)
    with pytest.raises(ConfigError, match="lesson plan"):
        LessonPlan.load(tmp_path / "missing.yaml")
