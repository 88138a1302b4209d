"""Scripted customer-support session: spoken questions in, an animated answering avatar out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.cli import _raw_config  # noqa: E402
from agent.config import parse_config  # noqa: E402
from agent.session import AgentSession  # noqa: E402


async def main() -> None:
    raw = _raw_config(str(ROOT / "configs" / "support_bot.yaml"))
    raw["input"] = {"type": "spoken_script", "path": str(ROOT / "configs" / "demo_script.yaml")}
    session = AgentSession(parse_config(raw, source="configs/support_bot.yaml"))
    async with session:
        await session.run_until_done()
    for row in session.metrics.turn_table():
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
