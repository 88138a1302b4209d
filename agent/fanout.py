"""Where a session's news goes: in-process observers, the sink's hooks, the control channel.

`Fanout` is a `SessionObserver` that forwards to every registered observer (exceptions logged,
never raised), to the sink when it shows the conversation (`SessionHooks`: preview page, LiveKit
room) or publishes events (`EventPublisher`: a LiveKit room's `handoff` data) and to the control
channel (MQTT events and telemetry). Async deliveries run as owned background tasks (`TaskOwner`):
named, bounded in number, cancelled and awaited on close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from agent.interfaces import ControlChannel, EventPublisher, SessionHooks, SessionObserver, Sink
from flowact.types import AgentState, ControlChunk, VideoChunk

__all__ = ["Fanout", "TaskOwner"]

log = logging.getLogger("agent.session")


class TaskOwner:
    """Named tasks of one owner: long-lived ones (`spawn`) and bounded fire-and-forget ones
    (`schedule`, at most `max_background` pending; more are dropped and counted)."""

    def __init__(self, *, max_background: int = 64) -> None:
        self.max_background = max_background
        self.dropped = 0
        self.failures = 0
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.on_failure: list[Callable[[str, BaseException], None]] = []

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)
        return task

    def schedule(self, name: str, coro: Coroutine[Any, Any, Any], *, quiet: bool = False) -> None:
        """Run `coro` in the background (`quiet`: a failure is a logged warning, not a task failure).
        A dropped coroutine, or one whose task is cancelled before it starts, is closed: never
        left "never awaited"."""
        if self._closed or len(self._background) >= self.max_background:
            coro.close()
            self.dropped += 1
            return
        task = asyncio.create_task(_quiet(coro) if quiet else coro, name=f"bg-{name}")
        self._background.add(task)
        task.add_done_callback(self._background_done)
        task.add_done_callback(lambda _t: coro.close())  # a no-op once it ran

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        self._done(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("task %s failed: %s", task.get_name(), exc)
            for callback in self.on_failure:
                callback(task.get_name(), exc)

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        return [*self._tasks.values(), *self._background]

    def get(self, name: str) -> asyncio.Task[Any] | None:
        return self._tasks.get(name)

    async def aclose(self) -> None:
        self._closed = True
        tasks = self.tasks
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._background.clear()


class Fanout(SessionObserver):
    """Forwards session news to observers, the sink's hooks and the control channel."""

    def __init__(self, owner: TaskOwner) -> None:
        self.owner = owner
        self.observers: list[SessionObserver] = []
        self.hooks: SessionHooks | None = None
        self.control: ControlChannel | None = None
        self.publisher: EventPublisher | None = None

    def attach(self, sink: Sink | None, control: ControlChannel | None) -> None:
        self.hooks = sink if isinstance(sink, SessionHooks) else None
        self.publisher = sink if isinstance(sink, EventPublisher) else None
        self.control = control

    # --- SessionObserver -------------------------------------------------------------------------
    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        self.event(kind, dict(payload))

    def on_state(self, state: AgentState) -> None:
        self.state(state)

    def on_control(self, chunk: ControlChunk) -> None:
        for obs in self.observers:
            _safe(obs.on_control, chunk)

    def on_video(self, chunk: VideoChunk) -> None:
        for obs in self.observers:
            _safe(obs.on_video, chunk)

    def on_metrics(self, snapshot: Mapping[str, Any]) -> None:
        for obs in self.observers:
            _safe(obs.on_metrics, snapshot)
        if self.control is not None:
            self.owner.schedule("telemetry", self.control.publish_telemetry(dict(snapshot)), quiet=True)
        if self.hooks is not None:
            self.owner.schedule("hook-metrics", self.hooks.on_metrics(snapshot), quiet=True)

    # --- helpers ---------------------------------------------------------------------------------
    def event(self, kind: str, payload: dict[str, Any]) -> None:
        """A session event for observers, the control channel and a sink that publishes its kind."""
        for obs in self.observers:
            _safe(obs.on_event, kind, payload)
        if self.control is not None:
            self.owner.schedule(f"event-{kind}", self.control.publish_event(kind, payload))
        if self.publisher is not None and kind in self.publisher.event_kinds:
            self.owner.schedule(f"sink-event-{kind}", self.publisher.publish_event(kind, payload), quiet=True)

    def state(self, state: AgentState) -> None:
        self.event("state", {"state": state.value})
        if self.hooks is not None:
            self.owner.schedule("hook-state", self.hooks.on_state(state), quiet=True)
        for obs in self.observers:
            _safe(obs.on_state, state)

    def transcript(self, role: str, text: str, final: bool) -> None:
        """A transcript line (user or agent), as an event and on the sink's captions."""
        self.event("transcript", {"role": role, "text": text, "final": final})
        if self.hooks is not None:
            self.owner.schedule("hook-transcript", self.hooks.on_transcript(role, text, final), quiet=True)


async def _quiet(coro: Coroutine[Any, Any, Any]) -> None:
    """A hook or telemetry delivery: failures are logged as warnings, never raised."""
    try:
        await coro
    except Exception as e:
        log.warning("delivery failed: %s", e)


def _safe(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as e:  # observers never break the session
        log.warning("observer %s failed: %s", getattr(fn, "__qualname__", fn), e)
