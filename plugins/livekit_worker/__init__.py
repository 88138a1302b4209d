"""`flowact-agent worker`: serve many rooms as a LiveKit dispatch worker (livekit-agents' worker machinery).

    flowact-agent worker --config examples/fleet/worker.yaml      (or: python -m plugins.livekit_worker)

One `AgentSession` per dispatched room, each in its own job process, with the LiveKit transport
publishing into the job's room. See `server` (the registered worker), `job` (prewarm and the job),
`metadata` (what a dispatch may ask for), `load` (what the worker reports as its load).
"""

from plugins.livekit_worker.cli import main

__all__ = ["main"]
