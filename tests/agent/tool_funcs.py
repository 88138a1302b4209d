"""Real tool callables for the tool tests (imported by `module:function` reference)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

ORDERS = {"1234": "shipped on Monday, arrives tomorrow", "5678": "being packed, ships today"}


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up the status of an order by its number."""
    status = ORDERS.get(order_id.strip())
    return {"order_id": order_id, "status": status or "not found"}


async def slow_lookup(order_id: str, delay_s: float = 1.0) -> str:
    """An order lookup that takes a while."""
    await asyncio.sleep(delay_s)
    return f"Order {order_id}: {ORDERS.get(order_id, 'not found')}."


def blocking_lookup(order_id: str) -> str:
    """A sync tool that blocks (runs in a thread)."""
    time.sleep(0.2)
    return f"Order {order_id} checked."


def broken(order_id: str) -> str:
    """A tool that raises."""
    raise RuntimeError(f"database down for {order_id}")


def typed(name: str, count: int, ratio: float, flag: bool, tags: list[str], mode: Literal["a", "b"],
          note: str | None = None) -> str:
    """A tool with every supported parameter type."""
    return f"{name}:{count}:{ratio}:{flag}:{tags}:{mode}:{note}"


def untyped(x) -> str:  # type: ignore[no-untyped-def]
    return str(x)


async def very_slow_lookup(order_id: str) -> str:
    """An order lookup that takes 1.5 s."""
    await asyncio.sleep(1.5)
    return f"Order {order_id}: {ORDERS.get(order_id, 'not found')}."
