"""Prometheus metrics of a worker and its jobs, served on `metrics_port` at /metrics.

The worker runs prometheus_client in multiprocess mode (one directory per worker run, set before
prometheus_client is imported, see `enable_multiprocess`), so the job processes' counters and
histograms add up with the worker's own at the one endpoint livekit-agents serves (its own
`lk_agents_*` metrics are there too). Worker: jobs accepted / declined (by reason), load, active
jobs. Jobs (`JobMetrics`, a session observer): frames written, repeated and dropped, A/V offset,
per-turn latencies (heard, seen, LLM first token, TTS first audio), errors.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from agent.interfaces import SessionObserver
from flowact.types import VideoChunk

__all__ = ["JobMetrics", "WorkerMetrics", "enable_multiprocess"]

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TURN_LATENCIES = ("heard_s", "seen_s", "llm_first_token", "tts_first_audio", "endpoint_s")


@contextmanager
def enable_multiprocess() -> Iterator[str]:
    """A PROMETHEUS_MULTIPROC_DIR for this worker run (enter before prometheus_client is imported).

    A directory the environment names is used as is and kept; one made here is removed when the run
    ends, so restarted workers do not pile up metrics directories in the temp folder."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = given or tempfile.mkdtemp(prefix="flowact-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        if not given:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(path, ignore_errors=True)


class WorkerMetrics:
    """The worker process's own series."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self.accepted = Counter("flowact_worker_jobs_accepted", "jobs accepted")
        self.declined = Counter("flowact_worker_jobs_declined", "jobs declined, by reason", ["reason"])
        self.load = Gauge("flowact_worker_load", "reported load (job CPU s per s / cores)", multiprocess_mode="livemax")
        self.active = Gauge("flowact_worker_jobs_active", "running jobs", multiprocess_mode="livemax")
        self.draining = Gauge("flowact_worker_draining", "1 while draining", multiprocess_mode="livemax")


class JobMetrics(SessionObserver):
    """One job's session, counted into the worker's metrics (created in the job process)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.frames = Counter("flowact_job_frames", "video frames written to the room")
        self.repeated = Counter("flowact_job_frames_repeated", "late frames repeated")
        self.dropped = Counter("flowact_job_frames_dropped", "late frames dropped")
        self.errors = Counter("flowact_job_errors", "session errors")
        self.turns = Counter("flowact_job_turns", "finished turns")
        self.av_offset = Gauge("flowact_job_av_offset_ms", "A/V offset at the sink", multiprocess_mode="liveall")
        self.latency = Histogram("flowact_turn_latency_seconds", "per-turn latency by stage", ["stage"],
                                 buckets=LATENCY_BUCKETS)
        self._seen = {"repeated": 0, "dropped": 0}

    def on_video(self, chunk: VideoChunk) -> None:
        self.frames.inc(len(chunk.frames))

    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == "error":
            self.errors.inc()
        elif kind == "turn":
            self.turns.inc()
            for stage in TURN_LATENCIES:
                value = payload.get(stage)
                if isinstance(value, int | float):
                    self.latency.labels(stage.removesuffix("_s")).observe(float(value))

    def on_metrics(self, snapshot: Mapping[str, Any]) -> None:
        for key, counter in (("repeated", self.repeated), ("dropped", self.dropped)):
            now = int(snapshot.get(key) or 0)
            if now > self._seen[key]:
                counter.inc(now - self._seen[key])
                self._seen[key] = now
        offset = snapshot.get("av_offset_ms")
        if isinstance(offset, int | float):
            self.av_offset.set(float(offset))
