"""The worker process: livekit-agents' `AgentServer` registered under `agent_name`, deciding per job.

livekit-agents does the fleet machinery: the `/agent` websocket to the LiveKit server (registration,
availability, assignment, termination, status with load), the pool of prewarmed job processes (one
process per job), the health endpoint. We add: accept/decline from the dispatch metadata (a bad one
is declined with `terminate` and its reason logged, so no other worker retries it), our load measure
(`ProcessTreeLoad`), the job itself (`job.run_job`) and SIGTERM/SIGINT -> drain (running jobs finish,
no new ones; the server is told the worker is full) -> close.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from pathlib import Path

from livekit.agents import AgentServer, JobExecutorType, JobRequest

from agent.config import load_config
from agent.errors import ConfigError, InputError
from plugins.livekit_worker.config import WorkerConfig, load_worker_config
from plugins.livekit_worker.job import prewarm, run_job
from plugins.livekit_worker.load import ProcessTreeLoad
from plugins.livekit_worker.metadata import parse_metadata
from plugins.livekit_worker.metrics import WorkerMetrics
from plugins.transport_livekit.credentials import read_secrets_file

__all__ = ["FleetWorker", "run_worker"]

log = logging.getLogger("flowact.worker")
DECLINE_LABELS = {"metadata", "metadata.persona", "metadata.portrait", "metadata.language", "metadata.greeting"}


class FleetWorker:
    """One registered worker. `run()` until `stop()` (or a signal), then drain and close."""

    def __init__(self, worker_file: str | Path, *, env: dict[str, str] | None = None) -> None:
        self.worker_file = str(Path(worker_file).resolve())
        self.cfg: WorkerConfig = load_worker_config(self.worker_file)
        for path in self.cfg.personas.values():  # a broken persona fails the worker's start, not each job
            load_config(path)
        env = dict(os.environ if env is None else env)
        url, key, secret = _credentials(self.cfg, env)
        self.load = ProcessTreeLoad()
        self.accepted = 0
        self.declined: dict[str, int] = {}  # reason -> count (metrics)
        self.server = AgentServer(
            ws_url=url, api_key=key, api_secret=secret,
            load_threshold=self.cfg.load_threshold,
            num_idle_processes=self.cfg.num_idle_processes,
            drain_timeout=self.cfg.drain_timeout_s,
            job_executor_type=JobExecutorType.PROCESS,
            host=self.cfg.host, port=self.cfg.http_port,
            setup_fnc=functools.partial(prewarm, self.worker_file),
            load_fnc=self._load,
            initialize_process_timeout=120.0,  # loading models on a busy 2-core box takes a while
            prometheus_port=self.cfg.metrics_port,
            prometheus_multiproc_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") if self.cfg.metrics_port else None,
        )
        self.metrics: WorkerMetrics | None = None
        if self.cfg.metrics_port:  # created once livekit-agents has emptied the multiprocess directory
            self.server.on("worker_started", self._start_metrics)
        self.server.rtc_session(functools.partial(run_job, self.worker_file), agent_name=self.cfg.agent_name,
                                on_request=self.on_request)
        self._stop = asyncio.Event()

    def _start_metrics(self, *_: object) -> None:
        self.metrics = WorkerMetrics()

    def _load(self) -> float:
        load = self.load.load()
        if self.metrics is not None:
            self.metrics.load.set(load)
            self.metrics.active.set(len(self.server.active_jobs))
        return load

    async def on_request(self, req: JobRequest) -> None:
        """Accept a room whose metadata is valid; decline (terminate: no retry elsewhere) otherwise."""
        fields = {"job_id": req.id, "room": req.room.name}
        try:
            settings = parse_metadata(req.job.metadata, self.cfg)
        except InputError as e:
            reason = str(e)
            field = reason.split(":")[0]  # e.g. metadata.portrait; unknown keys share one label (bounded)
            field = field if field in DECLINE_LABELS else "metadata.other"
            self.declined[field] = self.declined.get(field, 0) + 1
            if self.metrics is not None:
                self.metrics.declined.labels(field).inc()
            log.warning("declined job %s for room %r: %s", req.id, req.room.name, reason,
                        extra={**fields, "event": "job_declined", "reason": reason})
            await req.reject(terminate=True)
            return
        self.accepted += 1
        if self.metrics is not None:
            self.metrics.accepted.inc()
        log.info("accepting job %s for room %r (persona %s)", req.id, req.room.name, settings.persona, extra=fields)
        await req.accept(identity=f"{self.cfg.identity}-{req.id}"[:64], name=self.cfg.name,
                         attributes={"flowact.persona": settings.persona})

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Register and serve until `stop()`; then drain (running jobs finish) and close."""
        run = asyncio.create_task(self.server.run(devmode=False), name="flowact-worker-run")
        stop = asyncio.create_task(self._stop.wait(), name="flowact-worker-stop")
        try:
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            if run.done():
                run.result()  # a terminal connection failure surfaces here
                return
            n = len(self.server.active_jobs)
            log.info("draining: %d running job(s) may finish, no new ones", n, extra={"event": "draining", "jobs": n})
            if self.metrics is not None:
                self.metrics.draining.set(1)
            try:
                await self.server.drain()
            except TimeoutError:
                log.warning("drain timed out after %d s; closing the remaining jobs", self.cfg.drain_timeout_s)
        finally:
            stop.cancel()
            await self.server.aclose()
            if not run.done():
                run.cancel()
            await asyncio.gather(run, stop, return_exceptions=True)
            log.info("closed", extra={"event": "closed"})


def _credentials(cfg: WorkerConfig, env: dict[str, str]) -> tuple[str, str, str]:
    """(url, key, secret): the environment, then the secrets file (the transport's KEY=value format)."""
    file_vals = read_secrets_file(cfg.secrets_file) if cfg.secrets_file is not None else {}
    names = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    vals = [env.get(k) or file_vals.get(k) or "" for k in names]
    missing = [k for k, v in zip(names, vals, strict=True) if not v]
    if missing:
        raise ConfigError(f"worker: set {', '.join(missing)} (environment or `secrets_file:`)")
    if not vals[0].startswith(("ws://", "wss://", "http://", "https://")):
        raise ConfigError(f"worker: LIVEKIT_URL must start with ws://, wss://, http:// or https://, got {vals[0]!r}")
    return vals[0], vals[1], vals[2]


def run_worker(worker_file: str | Path) -> int:
    """`flowact-agent worker --config FILE`: serve until SIGTERM/SIGINT, then drain. Exit code 0/1."""
    worker = FleetWorker(worker_file)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    try:
        asyncio.run(main())
    except Exception as e:
        log.error("worker failed: %s: %s", type(e).__name__, e)
        return 1
    return 0

