"""An answer begun from an early transcript, before the end of turn is decided.

While the end-of-turn detector still decides (or waits, on a pause it judged incomplete), the
listener may already have the utterance's transcript (`agent.listening`, early transcription). The
conversation then starts the real answer at once, held (`TurnRunner(held=True)`): the LLM writes and
TTS synthesizes the first clause, but nothing is spoken, no tool runs and no turn exists yet.

* The end of turn brings the same words (case and punctuation aside): the turn adopts the held
  runner (`adopt`), so its first audio is ready or nearly so, and the LLM is asked once. A pause the
  end-of-turn model judged incomplete keeps it held for as long as that wait lasts.
* Anything else cancels it (`cancel`): the user's voice going on after the pause (the VAD's resume
  event, at the first voiced frame: a held answer to unfinished words never holds the LLM while the
  user speaks), another transcript, a typed line, `say`, an interrupt, close. Its LLM stream and TTS
  stop, nothing of it was queued; one answer, never two.

After a false early end (a turn cancelled because the user went on), the early answer is begun for
the whole question (the first part and the rest), as the turn will be.

Only one early answer exists at a time. It is not begun while a turn runs (the LLM is busy and the
user is barging in), nor when preparing the turn has side effects (a tutor grades the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from functools import partial

from agent.tasks import retrieve
from agent.turn_runner import TurnResult, TurnRunner

__all__ = ["EarlyAnswer"]


@dataclass(slots=True)
class EarlyAnswer:
    """A held runner answering `text`, and the task that runs it (owned by the conversation).
    The task's result is None when the answer cannot be given early (a line to speak instead)."""

    text: str
    runner: TurnRunner
    task: asyncio.Task[TurnResult | None]
    begun: float = 0.0  # session clock (for logs)

    def matches(self, text: str) -> bool:
        """The end of turn's transcript has the words this answer was begun for (case and
        punctuation aside: "Where is it?" is "where is it"; a word more or less is another question)."""
        return _words(text) == _words(self.text)

    async def adopt(self, turn: int) -> TurnResult | None:
        """Make the held answer `turn`'s and run it to its end (None: answer the turn afresh)."""
        self.runner.release(turn)
        try:
            return await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # this turn is cancelled: so is its answer
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
                raise
            return None  # the early answer alone was cancelled: the turn answers afresh
        except TimeoutError:  # held too long before it was adopted
            return None

    def cancel(self) -> None:
        if not self.task.done():
            self.task.cancel()
        self.task.add_done_callback(partial(retrieve, what="cancelled early answer"))  # the turn answers afresh

    async def aclose(self) -> None:
        self.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())
