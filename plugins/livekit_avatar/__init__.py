"""flowact as an avatar worker for livekit-agents' avatar protocol (optional extra `livekit-agents`).

livekit-agents (1.8.9) pins `livekit==1.1.21` while the main install pins `livekit==1.2.1`: install
this extra in its own venv (see README / Makefile target `lkagents-venv`). Importing this package
needs `livekit.agents`.
"""

from plugins.livekit_avatar.generator import (
    FlowactAvatarConfig,
    FlowactVideoGenerator,
    run_avatar_worker,
)

__all__ = ["FlowactAvatarConfig", "FlowactVideoGenerator", "run_avatar_worker"]
