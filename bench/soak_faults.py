"""The soak's scheduled faults (bench/soak.py): each injected during a question, each with its own
check (see the soak's docstring for the kinds)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from flowact.types import AgentState

QUESTIONS = [
    "Where is my order one two three four?", "Can I change the delivery address?",
    "How long does shipping take?", "Can you tell me more about returns?", "What are your opening hours?",
]


class FaultInjection:
    """The fault half of `bench.soak.Soak` (a mixin: it uses the run's session, user and counters)."""

    rng: Any
    faults: Any
    injected: dict[str, int]
    survived: dict[str, int]
    fault_log: list[dict[str, Any]]
    fault_questions: dict[str, int]
    control: Any
    broker: Any
    mqtt: Any
    room: Any
    session: Any
    mic: Any
    watch: Any
    t0: float

    async def ask(self, text: str, how: str = "spoken", within_s: float = 300.0, *, sabotaged: bool = False) -> bool:
        raise NotImplementedError

    async def idle(self, within_s: float = 120.0) -> None:
        raise NotImplementedError

    def progress(self, what: str) -> None:
        raise NotImplementedError

    async def inject(self, kind: str) -> None:
        """Inject one fault during a question; survived when its own check passes and the next
        question is answered in full."""
        self.injected[kind] += 1
        t = time.monotonic()
        check: dict[str, Any] = {}
        ok = True
        q = self.rng.choice(QUESTIONS)
        if kind in ("tts_raise", "asr_raise", "sink_stall"):
            if kind == "sink_stall":
                self.faults.sink_stall_s = 2.0
            else:
                setattr(self.faults, kind, True)
            await self.ask(q, sabotaged=True)  # answered or not: the fault is on its way
            check["fired"] = dict(self.faults.fired)
        elif kind == "llm_kill_restart":
            ok = await self._kill_llm(q, check)
        elif kind == "mqtt_broker_restart":
            connections = self.control.connections
            await asyncio.to_thread(self.broker.restart)
            check["reconnected"] = await self.mqtt.wait_online(30)
            check["reconnect_s"] = round(time.monotonic() - t, 2)
            ok = check["reconnected"] and await self.ask("Thank you for your patience.", "mqtt")
            check["command_after"] = ok
            # read after the command went through: the soak's own client can be back before the agent's
            check["connections"] = [connections, self.control.connections]
        elif kind == "livekit_signal_drop":
            check.update(await self.room.drop())
            ok = bool(check.get("media_again"))
        answered = await self.ask(self.rng.choice(QUESTIONS), "typed" if kind == "livekit_signal_drop" else "spoken")
        check["next_answered"] = answered
        if kind == "llm_kill_restart" and not ok and "skipped" not in check:
            # the killed turn's answer can be whole before the kill (an early answer, held until the end
            # of turn, wrote it): the plugin then starts the server again on the next question's call
            ok = check["restarted_by_agent"] = self._llm_restarted(check)
            check["restarted_on_next_question"] = ok
        if ok and answered:
            self.survived[kind] += 1
        self.fault_log.append({"kind": kind, "t": round(t - self.t0, 1), "survived": ok and answered, **check})
        self.progress(f"fault {kind}: {'survived' if ok and answered else 'NOT survived'} {check}")

    def _llm_restarted(self, check: dict[str, Any]) -> bool:
        """The LLM plugin started its llama.cpp server again (a new process) since the kill."""
        from plugins.llm_openai import OpenAILLM

        llm = self.session.c.llm
        server = llm.server if isinstance(llm, OpenAILLM) else None
        return server is not None and llm.server_restarts > check["restarts_before"] \
            and server.proc is not None and server.proc.pid != check["killed_pid"]

    async def _kill_llm(self, question: str, check: dict[str, Any]) -> bool:
        from plugins.llm_openai import OpenAILLM

        llm = self.session.c.llm
        server = llm.server if isinstance(llm, OpenAILLM) else None
        if server is None or server.proc is None:
            check["skipped"] = "not a local llama.cpp server"
            return False
        self.fault_questions["asked"] += 1
        before, failed = len(self.watch.turns), len(self.watch.failed)
        await self.mic.speak(question)
        check["thinking"] = await self.watch.until(lambda: self.watch.state == AgentState.THINKING, 30)
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))  # mid-stream (an early answer may be written already)
        pid, restarts = server.proc.pid, llm.server_restarts
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the server and anything it started
        t = time.monotonic()
        # the LLM plugin notices the dead server on its next attempt and starts it again
        await self.watch.until(lambda: len(self.watch.turns) > before or len(self.watch.failed) > failed, 300)
        check["turn_ended_s"] = round(time.monotonic() - t, 2)
        check.update({"killed_pid": pid, "restarts_before": restarts})
        check["restarted_by_agent"] = self._llm_restarted(check)
        self.fault_questions["answered"] += len(self.watch.turns) > before and not self.watch.turns[-1]["interrupted"]
        await self.idle()
        return bool(check["restarted_by_agent"])
