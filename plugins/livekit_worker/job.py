"""What runs in a job process: prewarm (before any job) and the job itself (one room, one session).

Prewarm (`prewarm`, livekit-agents' setup_fnc, in every idle process before a job arrives): the
default persona's VAD, ASR and TTS are built and loaded, its generator is started on its portrait
(face model loaded, portrait analysed, renderer built) and every allowed portrait is analysed for the
persona's video size (cached on disk, so only the first process pays).
The job (`run_job`): re-validate the dispatch metadata, connect to the job's room (the persona's
config is read meanwhile), build the persona's `AgentSession` with the LiveKit transport on that
already-connected room, reusing the prewarmed engines when the persona's sections match, and close it
when the job shuts down. It logs `job_started` (with its pid) and, once its first frame is out,
`job_timing`: monotonic marks (connected, configured, first frame rendered and published, session
started) that bench/fleet.py lines up with the server's own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

from livekit import rtc
from livekit.agents import JobContext, JobProcess

from agent.config import AgentConfig, PluginSpec, load_config
from agent.interfaces import Startable
from agent.registry import load_plugin
from agent.session import AgentSession, Components
from flowact.clock import RealClock
from plugins.livekit_worker.config import WorkerConfig, load_worker_config
from plugins.livekit_worker.metadata import JobSettings, parse_metadata
from plugins.livekit_worker.metrics import JobMetrics

__all__ = ["job_config", "prewarm", "run_job"]

log = logging.getLogger("flowact.worker.job")
WARM_KINDS = ("vad", "asr", "tts", "generator")
HUMAN_KINDS = (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP)


def job_config(wcfg: WorkerConfig, settings: JobSettings, *, room: str, identity: str) -> AgentConfig:
    """The persona's config with the room transport as sink and input and the metadata applied."""
    overrides: dict[str, Any] = {
        "sink": {"type": "livekit", "room": room, "identity": identity, "name": wcfg.name},
        "input": None,  # the room is the input (the user's microphone and chat)
    }
    if settings.portrait is not None:
        overrides["session.portrait"] = str(settings.portrait)
    if settings.greeting is not None:
        overrides["session.greeting"] = settings.greeting
    if settings.language is not None and _has_asr(settings.config_path):
        overrides["asr.language"] = settings.language
    cfg = load_config(settings.config_path, overrides=overrides)
    if cfg.plugin("llm") is not None and cfg.plugin("vad") is None:
        log.info("persona %r has no vad/asr: the avatar reads chat only", settings.persona)
    return cfg


def prewarm(worker_file: str, proc: JobProcess) -> None:
    """Load what is slow before a job arrives (runs once per idle process, blocking is fine here)."""
    wcfg = load_worker_config(worker_file)
    cfg = load_config(wcfg.personas[wcfg.default_persona or ""])
    for persona in wcfg.personas.values():
        _has_asr(persona)
    engines: dict[str, Any] = {}
    for kind in WARM_KINDS:
        spec = cfg.plugin(kind)
        if spec is None:
            continue
        ctx = {"vad": {"sample_rate": cfg.session.input_sample_rate},
               "tts": {"sample_rate": cfg.session.sample_rate},
               "generator": {"width": cfg.session.width, "height": cfg.session.height,
                             "fps": cfg.session.fps}}.get(kind, {})
        engine = spec.build(**ctx)
        if kind == "generator":  # the persona's portrait analysed and its renderer built, for this process
            try:
                asyncio.run(engine.start(cfg.session.portrait))
            except Exception as e:  # the job reports it (a bad portrait fails jobs, not the worker)
                log.warning("prewarm: cannot start the generator on %s: %s", cfg.session.portrait, e)
                continue
        elif isinstance(engine, Startable):  # loads its model; it stays in the object
            asyncio.run(engine.start())
        engines[kind] = (_spec_key(spec), engine)
    from flowact.reference import analyze_portrait

    gen = cfg.plugin("generator")
    cache_dir = gen.config.model_dump().get("cache_dir") if gen is not None else None
    portraits = [Path(cfg.session.portrait), *wcfg.allowed_portraits()]
    for p in portraits:
        try:
            analyze_portrait(p, width=cfg.session.width, height=cfg.session.height, cache_dir=cache_dir)
        except Exception as e:  # a bad portrait fails the jobs that ask for it, not the worker
            log.warning("prewarm: cannot analyse %s: %s", p, e)
    load_plugin("sink", "livekit")  # import the transport now, not on the job's loop
    proc.userdata["engines"] = engines
    log.info("prewarmed: %s, %d portraits", ", ".join(engines) or "no engines", len(portraits))


async def run_job(worker_file: str, ctx: JobContext) -> None:
    """One room: validate, connect, start the persona's session on the job's room; close it at shutdown.

    Bad metadata raises `InputError` here too (the worker declines such jobs before they start, this
    is the second line): livekit-agents logs it and marks the job failed; the worker is untouched.
    """
    clock = RealClock()
    marks = {"start": clock.now()}  # the job's timeline (monotonic: comparable across processes)
    wcfg = load_worker_config(worker_file)
    settings = parse_metadata(ctx.job.metadata, wcfg)
    fields = {"job_id": ctx.job.id, "room": ctx.job.room.name, "persona": settings.persona}
    log.info("job %s started in pid %d", ctx.job.id, os.getpid(), extra={**fields, "event": "job_started"})
    # the persona's config is read while the room connects (YAML + validation: not on the job's loop)
    configuring = asyncio.ensure_future(asyncio.to_thread(
        job_config, wcfg, settings, room=ctx.job.room.name, identity=ctx.token_claims().identity or wcfg.identity))
    try:
        # two peer connections (/rtc), as livekit-agents documents its default: the SDK would otherwise try
        # single-PC /rtc/v1 first and, on a server without it, pay a second handshake; each attempt runs
        # os_info's `lsb_release -a` + `getconf` (50-120 ms on a loaded Linux box)
        marks["connect"] = clock.now()
        await ctx.connect(single_peer_connection=False)
        marks["connected"] = clock.now()
    finally:
        cfg = await configuring
    marks["configured"] = clock.now()
    room = ctx.room
    sink_spec = cfg.plugin("sink")
    assert sink_spec is not None
    sink = load_plugin("sink", "livekit")(sink_spec.config, room=room)  # publish in the job's own room
    components = Components(sink=sink)
    warmed: dict[str, tuple[str, Any]] = ctx.proc.userdata.get("engines", {})
    for kind, (key, engine) in warmed.items():
        spec = cfg.plugin(kind)
        if spec is not None and _spec_key(spec) == key:
            setattr(components, kind, engine)  # loaded before the job arrived
    session = AgentSession(cfg, components=components, clock=clock)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        session.add_observer(JobMetrics())
    await session.start()
    marks["session_started"] = clock.now()
    log.info("job %s running in pid %d (%.2f s from the job's start; prewarmed: %s)", ctx.job.id, os.getpid(),
             clock.now() - marks["start"],
             ", ".join(k for k in warmed if _spec_key(cfg.plugins[k]) == warmed[k][0]) if warmed else "nothing",
             extra=fields)

    async def close(reason: str) -> None:
        log.info("job ending: %s", reason, extra=fields)
        await session.aclose()

    ctx.add_shutdown_callback(close)

    def on_left(p: rtc.RemoteParticipant) -> None:  # the last human left: the room's session is over
        if p.kind in HUMAN_KINDS and not any(q.kind in HUMAN_KINDS for q in room.remote_participants.values()):
            ctx.shutdown("the last user left")

    room.on("participant_disconnected", on_left)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.first_frame_sent.wait(), 10.0)
    marks["first_rendered"] = session.metrics.first_frame_at or 0.0
    marks["first_published"] = sink.first_frame_at or 0.0
    log.info("job %s timing: %s", ctx.job.id,
             ", ".join(f"{k} +{(v - marks['start']) * 1000:.0f} ms" for k, v in marks.items() if v),
             extra={**fields, "event": "job_timing", **{f"t_{k}": round(v, 4) for k, v in marks.items()}})


@functools.cache
def _has_asr(persona: Path) -> bool:
    """Whether a persona has an `asr:` section (read once per process)."""
    return load_config(persona).plugin("asr") is not None


def _spec_key(spec: PluginSpec) -> str:
    return f"{spec.name}:{spec.config.model_dump_json()}"
