"""Scripted customer-support session: spoken questions in, an animated answering avatar out."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent import AgentSession, load_config  # noqa: E402


async def main() -> None:
    script = str(ROOT / "configs" / "demo_script.yaml")
    cfg = load_config(ROOT / "configs" / "support_bot.yaml",
                      overrides={"input": {"type": "spoken_script", "path": script}})
    session = AgentSession(cfg)
    async with session:
        await session.run_until_done()
    for row in session.metrics.turn_table():
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
