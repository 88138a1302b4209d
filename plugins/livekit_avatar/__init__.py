"""flowact as an avatar worker for livekit-agents' avatar protocol (optional extra `livekit-agents`).

livekit-agents (1.8.9) pins `livekit==1.1.21` while the main install pins `livekit==1.2.1`: install
this extra in its own venv (Makefile target `lkagents-venv`). Importing this package needs
`livekit.agents`. The avatar process joins the room and serves the agent's audio:

    room = rtc.Room(); await room.connect(url, avatar_token)
    worker = await run_avatar_worker(room, FlowactAvatarConfig(portrait="face.jpg"), sender_identity="agent")
    ...  # the agent side: AgentSession(...).output.audio = DataStreamAudioOutput(room, destination_identity=...)
    await worker.aclose()
"""

from plugins.livekit_avatar.generator import (
    FlowactAvatarConfig,
    FlowactVideoGenerator,
    run_avatar_worker,
)

__all__ = ["FlowactAvatarConfig", "FlowactVideoGenerator", "run_avatar_worker"]
