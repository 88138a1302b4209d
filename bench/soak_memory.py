"""Where the soak's memory goes: the Python heap (tracemalloc, optional), anonymous RSS
(/proc/self/smaps_rollup) and glibc's malloc (`agent.memory.malloc_stats`: in use, free inside the
arenas, mmapped; the number of arenas from malloc_info).

`RSS - in use` is what the allocator holds without the program using it (fragmentation, arenas of
threads, pages not returned); that is what steps up in one go when a new thread's arena fills.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import tempfile
import tracemalloc
from array import array
from typing import Any


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.fdopen.restype = ctypes.c_void_p
        return libc
    except (OSError, AttributeError):  # not glibc
        return None


_LIBC = _libc()


def arena_count() -> int:
    """How many malloc arenas exist (one per thread that ever allocated, up to M_ARENA_MAX)."""
    if _LIBC is None:
        return 0
    with tempfile.TemporaryFile("w+") as f:
        fp = _LIBC.fdopen(os.dup(f.fileno()), b"w")
        if not fp:
            return 0
        try:
            _LIBC.malloc_info(0, ctypes.c_void_p(fp))
        finally:
            _LIBC.fclose(ctypes.c_void_p(fp))
        f.seek(0)
        return len(re.findall(r'<heap nr="\d+">', f.read()))


def rollup() -> dict[str, float]:
    """Anonymous and file-backed resident memory in MB (/proc/self/smaps_rollup)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Anonymous", "Rss"):
                    out["anon_mb" if key == "Anonymous" else "rollup_rss_mb"] = int(rest.split()[0]) / 1000
    except OSError:
        pass
    if "rollup_rss_mb" in out and "anon_mb" in out:
        out["file_mb"] = out.pop("rollup_rss_mb") - out["anon_mb"]
    return out


class HeapTrace:
    """tracemalloc snapshots (when enabled): the warm one, and the top growth since it at the end."""

    def __init__(self, enabled: bool, frames: int = 4) -> None:
        self.enabled = enabled
        self.frames = frames
        self.base: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        if self.enabled:
            tracemalloc.start(self.frames)

    def mark(self) -> None:
        if self.enabled:
            self.base = _snapshot()

    def traced_mb(self) -> float | None:
        return tracemalloc.get_traced_memory()[0] / 1e6 if self.enabled else None

    def top(self, n: int = 20) -> list[dict[str, Any]]:
        if not self.enabled or self.base is None:
            return []
        diff = _snapshot().compare_to(self.base, "traceback")
        return [{"kb": round(d.size_diff / 1e3, 1), "count": d.count_diff,
                 "where": [f"{f.filename}:{f.lineno}" for f in d.traceback][-self.frames:]}
                for d in diff[:n]]


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")])


class Samples:
    """The per-second samples, one float array per key: an hour of them costs < 1 MB (a list of
    dicts cost ~6 MB an hour, which the bench then measured as the agent's own growth)."""

    def __init__(self) -> None:
        self.cols: dict[str, array[float]] = {}
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def append(self, row: dict[str, float]) -> None:
        for key, value in row.items():
            col = self.cols.get(key)
            if col is None:
                col = self.cols[key] = array("d", [math.nan] * self.n)
            col.append(value)
        self.n += 1
        for col in self.cols.values():
            if len(col) < self.n:
                col.append(math.nan)

    def rows(self) -> list[dict[str, float]]:
        """As dicts (for the report, once the run is over); a key missing from a sample is left out."""
        return [{k: col[i] for k, col in self.cols.items() if not math.isnan(col[i])} for i in range(self.n)]
