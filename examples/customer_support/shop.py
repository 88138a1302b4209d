"""The example shop's order system: the support bot's `lookup_order` tool (a real Python callable).

A real deployment points the tool at its own module or at an HTTP endpoint (see configs/support_bot.yaml).
"""

from __future__ import annotations

ORDERS: dict[str, tuple[str, str]] = {
    "1234": ("shipped on Monday", "arrives tomorrow before noon"),
    "5678": ("being packed", "ships today"),
    "4321": ("delayed at the warehouse", "arrives on Friday"),
}


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up the status of an order by its number."""
    oid = "".join(ch for ch in order_id if ch.isdigit())
    found = ORDERS.get(oid)
    if found is None:
        return {"order_id": oid or order_id, "found": "no",
                "summary": f"I could not find an order number {oid or order_id}."}
    status, eta = found
    return {"order_id": oid, "found": "yes", "status": status, "eta": eta,
            "summary": f"Order {oid} is {status} and {eta}."}
