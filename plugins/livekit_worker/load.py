"""Worker load: CPU time spent by the job processes per wall-clock second, as a share of the machine.

Here a job is bound by the CPU its media path burns (portrait rendering, encoding, TTS/ASR), so the
load is the CPU seconds per second of all this worker's job processes (and the processes it prewarms)
divided by the number of cores: 0.5 on a 2-core machine means one core's worth of work. Measured with
psutil over the worker's process tree (not system-wide, which other programs on the machine would
distort), averaged over a short window. A local LLM server started by a job is a child of the job
process and is counted with it.
"""

from __future__ import annotations

import os
import threading
from collections import deque

import psutil

from flowact.clock import Clock, RealClock

__all__ = ["WINDOW_S", "ProcessTreeLoad"]

WINDOW_S = 2.0  # the load is averaged over this many seconds


class ProcessTreeLoad:
    """`load()` -> 0..1 (and more when overloaded); thread-safe (livekit-agents calls it from an executor)."""

    def __init__(self, *, window_s: float = WINDOW_S, clock: Clock | None = None, cores: int | None = None,
                 root_pid: int | None = None) -> None:
        self.clock: Clock = clock or RealClock()
        self.window_s = window_s
        self.cores = cores or len(os.sched_getaffinity(0)) or 1
        self._root = psutil.Process(root_pid or os.getpid())
        self._last: dict[int, float] = {}  # pid -> cpu seconds at the previous sample
        self._total = 0.0  # cpu seconds accumulated by children since we started
        self._samples: deque[tuple[float, float]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def _sample(self) -> float:
        seen: dict[int, float] = {}
        for child in self._root.children(recursive=True):
            try:
                t = child.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            seen[child.pid] = t.user + t.system
        for pid, cpu in seen.items():
            self._total += max(0.0, cpu - self._last.get(pid, 0.0))  # a new process: all its CPU is new
        self._last = seen
        return self._total

    def load(self) -> float:
        with self._lock:
            now = self.clock.now()
            self._samples.append((now, self._sample()))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
                self._samples.popleft()
            (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
            if t1 - t0 < 0.2:
                return 0.0 if len(self._samples) < 2 else self._last_load
            self._last_load = (c1 - c0) / (t1 - t0) / self.cores
            return self._last_load

    _last_load = 0.0
