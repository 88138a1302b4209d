"""flowact as an avatar worker for livekit-agents' avatar protocol (optional extra `livekit-agents`).

livekit-agents (1.8.9) pins `livekit==1.1.21` but runs on the project's `livekit==1.2.1`: `make setup`
installs it with --no-deps beside it (one environment). Importing this package needs `livekit.agents`.
The avatar process joins the room and serves the agent's audio:

    room = rtc.Room(); await room.connect(url, avatar_token)
    worker = await run_avatar_worker(room, FlowactAvatarConfig(portrait="face.jpg"), sender_identity="agent")
    ...  # the agent side: AgentSession(...).output.audio = DataStreamAudioOutput(room, destination_identity=...)
    await send_avatar_command(agent_room, "flowact-avatar", "emotion", "happy", duration=3)  # agent side
    await worker.aclose()

Expressions and gestures travel as the `flowact.command` RPC (see `plugins.livekit_avatar.commands`).
"""

from plugins.livekit_avatar.commands import COMMAND_METHOD, AvatarCommandError, send_avatar_command
from plugins.livekit_avatar.generator import (
    FlowactAvatarConfig,
    FlowactVideoGenerator,
    run_avatar_worker,
)

__all__ = ["COMMAND_METHOD", "AvatarCommandError", "FlowactAvatarConfig", "FlowactVideoGenerator",
           "run_avatar_worker", "send_avatar_command"]
