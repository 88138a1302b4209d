"""The process's native heap over a long session.

glibc's malloc gives every thread that allocates its own arena (up to 8 per core), and keeps what is
freed inside them: a session's many threads (the default executor's `to_thread` calls, the renderer,
the encoder, Whisper, ONNX) each hold freed frames and buffers, and RSS rises in one-off steps as
another arena fills and stays full. Three settings keep it flat (glibc only; elsewhere they do
nothing): fewer arenas (`limit_arenas`, set before the session's threads start allocating), fixed
release thresholds (`release_thresholds`: large blocks get their own mapping, unmapped when freed,
and an arena's free top is returned at once; glibc otherwise raises its mmap threshold to the
largest block freed so far, up to 32 MB, and keeps every later block of that size in the arenas: a
turn's ~100 MB of audio, mel and frame buffers stayed there until the next trim) and giving the free
pages back from time to time (`trim`, `malloc_trim(0)`, run in a thread while the agent is idle: it
walks every arena).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flowact.clock import Clock

__all__ = ["limit_arenas", "malloc_stats", "release_thresholds", "trim", "trim_loop"]

log = logging.getLogger("agent.memory")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt parameters (malloc.h)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        with contextlib.suppress(AttributeError):  # glibc >= 2.33
            libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return None


_LIBC = _glibc()


def limit_arenas(n: int) -> bool:
    """At most `n` malloc arenas for threads created from now on (glibc latches its limit once more
    than 8 arenas exist: call this early). True when set."""
    return _LIBC is not None and bool(_LIBC.mallopt(M_ARENA_MAX, n))


def release_thresholds(mmap_bytes: int, trim_bytes: int) -> bool:
    """Blocks of `mmap_bytes` or more are mapped on their own (unmapped when freed) and an arena's
    free top above `trim_bytes` is returned when it grows past it; both fixed (glibc's dynamic
    threshold stops). True when set."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(_LIBC.mallopt(M_TRIM_THRESHOLD, trim_bytes))


def malloc_stats() -> dict[str, float]:
    """glibc's view of the heap in MB ({} elsewhere): `malloc_used_mb` (handed out, the program's own),
    `malloc_free_mb` (freed but kept inside the arenas), `malloc_mmap_mb` (large blocks mapped on their
    own, part of the used), `malloc_arena_mb` (the arenas' size)."""
    if _LIBC is None:
        return {}
    try:
        m = _LIBC.mallinfo2()
    except AttributeError:  # glibc < 2.33
        return {}
    return {"malloc_arena_mb": m.arena / 1e6, "malloc_used_mb": (m.uordblks + m.hblkhd) / 1e6,
            "malloc_free_mb": m.fordblks / 1e6, "malloc_mmap_mb": m.hblkhd / 1e6}


def trim() -> bool:
    """Give the free pages of every arena back to the system (blocking: call it in a thread)."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


async def trim_loop(clock: Clock, every_s: float, wait_idle: Callable[[], Awaitable[None]]) -> None:
    """Every `every_s`, once no turn is in progress (`wait_idle`: not in the middle of an answer), trim
    in a thread."""
    if _LIBC is None:
        return
    while True:
        await clock.sleep(every_s)
        await wait_idle()
        await asyncio.to_thread(trim)
