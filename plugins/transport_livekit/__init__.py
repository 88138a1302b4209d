"""The agent as a LiveKit room participant: synced audio + video out, the user's mic and chat in."""

from plugins.transport_livekit.config import LiveKitConfig
from plugins.transport_livekit.credentials import mint_token, read_secrets_file, resolve
from plugins.transport_livekit.sink import LiveKitSink

__all__ = ["LiveKitConfig", "LiveKitSink", "mint_token", "read_secrets_file", "resolve"]
