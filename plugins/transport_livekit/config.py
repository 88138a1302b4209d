"""LiveKitSink configuration (pydantic: config only, never on the hot path)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["LiveKitConfig"]


class LiveKitConfig(BaseModel):
    """Where to join and how to behave in the room.

    Credentials: `token` (a ready JWT), else `api_key`/`api_secret`, else the env variables
    LIVEKIT_API_KEY / LIVEKIT_API_SECRET, else `secrets_file` (KEY=value lines). With a key and
    secret the sink mints its own short-lived, least-privilege token for this room and identity.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="ws(s):// server URL; default: env LIVEKIT_URL")
    room: str = "flowact"
    identity: str = "flowact-avatar"
    name: str = "Avatar"
    token: SecretStr | None = None
    api_key: str | None = None
    api_secret: SecretStr | None = None
    secrets_file: Path | None = None
    token_ttl_s: int = Field(900, ge=60, le=24 * 3600, description="lifetime of a minted token")

    # media
    simulcast: bool = Field(
        False, description="publish simulcast layers (for rooms with many viewers on mixed links); off by default: "
        "one viewer per avatar room, and the SDK caps the top layer below 540p at 20 fps (measured in Chromium)",
    )
    video_bitrate: int | None = Field(
        None, ge=50_000, description="max video bitrate (bps); default: ~0.1 bit per pixel and frame"
    )
    stream: str = Field("avatar", min_length=1, description="stream name of both tracks (browsers lip-sync one stream)")
    video_track: str = "avatar-video"
    audio_track: str = "avatar-audio"
    video_hold_ms: float = Field(
        20.0, ge=0, le=200,
        description="extra delay of each frame for the audio path's own latency (10 ms pulls, 20 ms Opus packets)",
    )
    queue_chunks: int = Field(
        3, ge=1, le=32,
        description="chunks buffered before silence is dropped to catch up (speech waits up to 4x as many)",
    )
    speech_backlog_s: float = Field(
        2.0, gt=0, le=30,
        description="speech waiting for a pump that is behind (a stalled CPU, a rejoin) is kept at least this "
                    "long (seconds of media) before its oldest part is dropped",
    )

    # hearing the user
    listen_to: str | None = Field(None, description="identity to listen to; default: first human")
    input_sample_rate: int = Field(16000, ge=8000, le=48000)
    input_queue_s: float = Field(2.0, gt=0, description="user audio buffered before dropping the oldest")

    # data
    chat_topics: list[str] = Field(default_factory=lambda: ["lk.chat"])
    legacy_chat_topic: str | None = "lk-chat-topic"
    transcription_topic: str = "lk.transcription"
    state_attribute: str = "lk.agent.state"
    event_topics: dict[str, str] = Field(
        default_factory=lambda: {"handoff": "flowact.handoff"},
        description="session events sent to the room as JSON text streams: event kind -> topic",
    )

    # robustness
    connect_timeout_s: float = Field(15.0, gt=0)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)
    reconnect_attempts: int = Field(0, ge=0, description="0 = retry forever")
