"""Tasks nobody awaits any more: their error is taken (logged at debug), never left to asyncio's
'exception was never retrieved'."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["retrieve"]

log = logging.getLogger("agent.tasks")


def retrieve(task: asyncio.Task[Any], what: str = "") -> None:
    """Take a finished task's error, if any: it is nobody's (whoever needed the result does the work
    again or reports it). As a done-callback: `task.add_done_callback(partial(retrieve, what=...))`."""
    if not task.cancelled() and (err := task.exception()) is not None:
        log.debug("%s failed: %s", what or task.get_name(), err)
