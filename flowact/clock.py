"""Injected clocks. Logic never calls time.time(): it asks its Clock.

`RealClock` is monotonic wall time. `FakeClock` is advanced by `sleep` itself (virtual time): a
sleeping task jumps the clock to its wake-up time once every other task is waiting, so an hour of
simulated conversation runs in seconds and timing tests are deterministic.

`Pacer` is the one way to pace work on a fixed period (the media loop, the LiveKit pump, the
avatar's render loop, paced inputs): tick k is due at `start + k * period`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "Pacer", "RealClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic timeline."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""

    async def sleep_until(self, t: float) -> None:
        """Wait until now() >= t."""


class RealClock:
    """Monotonic wall-clock time."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - time.monotonic()))


class FakeClock:
    """Virtual time for tests and offline rendering.

    `sleep(d)` registers a wake-up at now+d. Time advances only when every sleeper is waiting: the
    earliest wake-up is released after the event loop has had `settle` passes to run other ready
    work. Use `advance(d)` to move time by hand instead (then `auto=False`).
    """

    def __init__(self, start: float = 0.0, *, auto: bool = True, settle: int = 8) -> None:
        self._now = start
        self._auto = auto
        self._settle = settle
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (t, next(self._seq), fut))
        if self._auto and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive(), name="fake-clock-driver")
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def advance(self, seconds: float) -> None:
        """Move time forward by hand and wake every sleeper that is due."""
        self._now += seconds
        self._release_due()

    def _release_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def _drive(self) -> None:
        while self._sleepers:
            for _ in range(self._settle):
                await asyncio.sleep(0)
            # drop cancelled sleepers
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                break
            self._now = max(self._now, self._sleepers[0][0])
            self._release_due()


class Pacer:
    """Ticks on a fixed period on an injected clock: tick k is due at `start + k * period - lead`.

    `wait()` sleeps until the next tick is due and returns how late it woke (seconds, >= 0). When a
    consumer falls more than `max_lag_s` behind, the pacer re-anchors on now instead of rushing
    through the backlog (counted in `slips`); without `max_lag_s` missed ticks come back to back.
    """

    def __init__(
        self, clock: Clock, period: float, *, start: float | None = None, lead: float = 0.0,
        max_lag_s: float | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.clock = clock
        self.period = period
        self.lead = lead
        self.max_lag_s = max_lag_s
        self.start = clock.now() if start is None else start
        self.ticks = 0  # ticks handed out so far
        self.slips = 0

    @property
    def next_due(self) -> float:
        return self.start + self.ticks * self.period - self.lead

    def reanchor(self, t: float | None = None) -> None:
        """Make the next tick due at `t` (default now)."""
        t = self.clock.now() if t is None else t
        self.start = t + self.lead - self.ticks * self.period

    async def wait(self) -> float:
        """Sleep until the next tick is due; returns the lateness of this tick in seconds."""
        due = self.next_due
        await self.clock.sleep_until(due)
        lag = max(0.0, self.clock.now() - due)
        if self.max_lag_s is not None and lag > self.max_lag_s:
            self.slips += 1
            self.start += lag
        self.ticks += 1
        return lag
