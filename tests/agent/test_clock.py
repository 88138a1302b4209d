"""FakeClock: virtual time advances only when every task sleeps; ordering is exact."""

from __future__ import annotations

import asyncio

from flowact.clock import FakeClock, RealClock


async def test_fake_clock_runs_an_hour_instantly_and_in_order() -> None:
    clock = FakeClock()
    log: list[tuple[str, float]] = []

    async def ticker(name: str, period: float, n: int) -> None:
        for _ in range(n):
            await clock.sleep(period)
            log.append((name, clock.now()))

    loop = asyncio.get_running_loop()
    t_wall = loop.time()
    await asyncio.gather(ticker("a", 1.0, 3600), ticker("b", 60.0, 60))
    assert clock.now() == 3600.0
    assert loop.time() - t_wall < 30.0
    times = [t for _, t in log]
    assert times == sorted(times)
    assert ("b", 60.0) in log and ("a", 60.0) in log


async def test_fake_clock_manual_advance() -> None:
    clock = FakeClock(auto=False)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until(5.0)
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    clock.advance(4.0)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(1.0)
    await asyncio.wait_for(task, 1.0)
    assert woke == [5.0]


async def test_cancelled_sleeper_does_not_block_time() -> None:
    clock = FakeClock()
    t = asyncio.create_task(clock.sleep(100.0))
    await asyncio.sleep(0)
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)
    await clock.sleep(1.0)
    assert clock.now() == 1.0


async def test_real_clock_is_monotonic() -> None:
    c = RealClock()
    a = c.now()
    await c.sleep(0.01)
    assert c.now() - a >= 0.009
