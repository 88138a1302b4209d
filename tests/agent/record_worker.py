"""Subprocess for the kill -9 test: record one finished turn, say so, then hang until killed."""

from __future__ import annotations

import asyncio
import sys

from agent.record import SessionRecorder


async def main(db: str) -> None:
    rec = SessionRecorder(db, session_id="killed-session")
    await rec.start()
    rec.on_event("transcript", {"role": "user", "text": "Where is my order 1234?", "final": True})
    rec.on_event("tool", {"name": "lookup_order", "arguments": '{"order_id": "1234"}', "result": "shipped",
                          "ok": True, "duration_s": 0.01})
    rec.on_event("transcript", {"role": "agent", "text": "Order 1234 shipped on Monday.", "final": True})
    rec.on_event("turn", {"event": "turn", "turn": 1, "interrupted": False, "user_end_to_first_frame_s": 1.2})
    await rec.drain()
    print("TURN_DONE", flush=True)
    rec.on_event("transcript", {"role": "user", "text": "half a turn", "final": False})
    await asyncio.sleep(60)  # killed here, without aclose()


asyncio.run(main(sys.argv[1]))
