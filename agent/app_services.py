"""The application services a session uses per turn: knowledge base, kept record, tutor, tool events.

One object, so the session has few call sites (see each method):

    services = AppServices(knowledge=cfg.knowledge, record=cfg.record, tutor=cfg.tutor, name=source)
    await services.start()                              # session start (index KB, open record, load lesson)
    for obs in services.observers: session.add_observer(obs)
    greeting = services.greeting(cfg.session.greeting)
    messages, line = await services.prepare(messages, user_text)   # each user turn, before the LLM
    for kind, payload in services.on_tool_status(item, turn): emit(kind, payload)  # LLM ToolStatus items
    await services.aclose()                             # session end
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agent.history import before_last_user
from agent.interfaces import ChatMessage, SessionObserver
from agent.kb import Grounding, KnowledgeBase, KnowledgeConfig, asks, build_messages
from agent.record import RecordConfig, SessionRecorder, handoff_event
from agent.tools import ToolStatus
from agent.tutor import LessonPlan, Tutor, TutorConfig
from flowact.control.commands import loads_json

__all__ = ["AppServices"]


class AppServices:
    def __init__(self, *, knowledge: KnowledgeConfig | None = None, record: RecordConfig | None = None,
                 tutor: TutorConfig | None = None, name: str = "") -> None:
        self.knowledge_cfg, self.record_cfg, self.tutor_cfg = knowledge, record, tutor
        self.kb: KnowledgeBase | None = None
        self.recorder: SessionRecorder | None = None
        self.tutor: Tutor | None = None
        self.observers: list[SessionObserver] = []
        self._name = name

    async def start(self) -> None:
        """Index the knowledge folder (unchanged files are skipped), open the record, load the lesson."""
        k = self.knowledge_cfg
        if k is not None:
            self.kb = KnowledgeBase(k.db, max_file_bytes=k.max_file_bytes)
            await asyncio.to_thread(self.kb.index_dir, k.dir)
        r = self.record_cfg
        if r is not None:
            self.recorder = SessionRecorder(r.db, name=self._name, queue_max=r.queue_max)
            await self.recorder.start()
            self.observers.append(self.recorder)
        t = self.tutor_cfg
        if t is not None:
            plan = await asyncio.to_thread(LessonPlan.load, t.plan)
            self.tutor = await asyncio.to_thread(Tutor, plan, t.db, t.student)

    def greeting(self, default: str) -> str:
        """The opening line: the tutor's lesson (resumed) when there is a tutor, else `default`."""
        return self.tutor.start().say if self.tutor is not None else default

    async def prepare(self, messages: Sequence[ChatMessage], user_text: str) -> tuple[list[ChatMessage], str | None]:
        """Before the LLM, each user turn: (messages with the knowledge base's best sentences (or passages),
        or its `unknown_line` for a question it does not answer / tutor context, or a line to speak instead
        of calling the LLM: the tutor's graded reply with `speak: line`). The router still runs first: a
        tool's answer wins over any of these."""
        out = list(messages)
        if self.tutor is not None and self.tutor_cfg is not None:
            turn = await asyncio.to_thread(self.tutor.answer, user_text)
            if self.tutor_cfg.speak == "line":
                return out, turn.say
            out = before_last_user(out, ChatMessage("system", f"{turn.context} Say: {turn.say}"))
        k = self.knowledge_cfg
        if self.kb is not None and k is not None:
            found = await asyncio.to_thread(self.kb.grounding, user_text, k.k, max_chars=k.max_answer_chars)
            if k.answer == "passages":
                out = build_messages(out, found.passages)
            else:  # a question the knowledge base does not answer gets the honest line, not a small model's guess
                line = k.unknown_line if found.unanswered and asks(user_text) else None
                out = build_messages(out, Grounding(found.passages, (line,)) if line else found)
        return out, None

    def on_tool_status(self, status: ToolStatus, turn: int) -> list[tuple[str, dict[str, Any]]]:
        """Events for a finished tool: `tool` (for the record and observers) and `handoff` (with the
        transcript so far) when the hand-off tool ran. A `started` status gives none."""
        if status.phase != "finished":
            return []
        events: list[tuple[str, dict[str, Any]]] = [("tool", {
            "turn": turn, "name": status.name, "arguments": status.arguments, "result": status.result,
            "ok": status.ok, "error": status.error, "duration_s": round(status.duration_s, 4),
        })]
        if status.handoff:
            reason = ""
            try:
                args = loads_json(status.arguments or "{}")
                reason = str(args.get("reason", "")) if isinstance(args, dict) else ""
            except ValueError:
                pass
            events.append(("handoff", handoff_event(self.recorder, turn=turn, reason=reason or "user asked")))
        return events

    async def aclose(self) -> None:
        if self.recorder is not None:
            await self.recorder.aclose()
        if self.kb is not None:
            await asyncio.to_thread(self.kb.close)
        if self.tutor is not None:
            await asyncio.to_thread(self.tutor.close)
