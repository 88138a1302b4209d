"""TaskOwner.schedule: background deliveries that are dropped or cancelled never leave a coroutine
"never awaited" (the soak's shutdown printed that warning for MQTT telemetry)."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from agent.fanout import TaskOwner


async def test_dropped_and_cancelled_deliveries_are_closed_not_leaked() -> None:
    ran: list[str] = []

    async def deliver(name: str) -> None:
        ran.append(name)

    async def fail() -> None:
        raise RuntimeError("broker gone")

    owner = TaskOwner(max_background=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        owner.schedule("a", deliver("a"), quiet=True)
        owner.schedule("b", fail(), quiet=True)  # quiet: a logged warning, not a task failure
        owner.schedule("c", deliver("c"), quiet=True)  # over the bound: dropped
        await asyncio.sleep(0.05)
        owner.schedule("d", deliver("d"), quiet=True)
        owner.schedule("e", deliver("e"))
        await owner.aclose()  # cancels d and e before they start
        owner.schedule("f", deliver("f"), quiet=True)  # after close: dropped
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]
    assert ran == ["a"] and owner.failures == 0 and owner.dropped == 2


def test_unawaited_coroutines_would_be_caught() -> None:
    """The check above is real: an unawaited coroutine does warn (and is recorded)."""

    async def nothing() -> None:
        return None

    with pytest.warns(RuntimeWarning, match="never awaited"):
        nothing()
        gc.collect()
