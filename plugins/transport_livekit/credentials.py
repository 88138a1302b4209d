"""Server URL and token for the sink: a given token, or a least-privilege one minted from a key/secret.

Secrets come only from the config, the environment or a secrets file and are never logged.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

from flowact.errors import ConfigError
from plugins.transport_livekit.config import LiveKitConfig

__all__ = ["mint_token", "read_secrets_file", "resolve"]


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=value lines (`#` comments, optional `export `, optional quotes)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"livekit.secrets_file: cannot read {path}: {e.strerror}") from e
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            raise ConfigError(f"livekit.secrets_file: {path}:{n}: expected KEY=value")
        out[key.strip()] = value.strip().strip("'\"")
    return out


def mint_token(api_key: str, api_secret: str, *, room: str, identity: str, name: str, ttl_s: int,
               attributes: dict[str, str] | None = None) -> str:
    """A token for exactly this room and identity: join, publish (camera + mic), subscribe, data,
    own attributes (the agent state); no admin, no room creation/listing/recording. `attributes`
    are set on the participant at join (e.g. `lk.publish_on_behalf` for an avatar worker)."""
    from livekit import api

    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True,
        can_publish_sources=["camera", "microphone"], can_update_own_metadata=True,
    )
    token = (
        api.AccessToken(api_key, api_secret).with_identity(identity).with_name(name).with_kind("agent")
        .with_ttl(dt.timedelta(seconds=ttl_s)).with_grants(grants)
    )
    return (token.with_attributes(attributes) if attributes else token).to_jwt()


def resolve(cfg: LiveKitConfig, env: Mapping[str, str] | None = None, *,
            attributes: dict[str, str] | None = None) -> tuple[str, str]:
    """(url, token) from the config, the environment and the secrets file, in that order; a minted
    token carries `attributes` for the participant."""
    env = os.environ if env is None else env
    file_vals = read_secrets_file(cfg.secrets_file) if cfg.secrets_file is not None else {}

    def pick(value: str | None, key: str) -> str | None:
        return value or env.get(key) or file_vals.get(key) or None

    url = pick(cfg.url, "LIVEKIT_URL")
    if not url:
        raise ConfigError("livekit: no server URL (set `url:` or LIVEKIT_URL)")
    if not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise ConfigError(f"livekit.url must start with ws://, wss://, http:// or https://, got {url!r}")
    if cfg.token is not None:
        return url, cfg.token.get_secret_value()
    key = pick(cfg.api_key, "LIVEKIT_API_KEY")
    secret = pick(cfg.api_secret.get_secret_value() if cfg.api_secret else None, "LIVEKIT_API_SECRET")
    if not key or not secret:
        raise ConfigError(
            "livekit: no credentials (set `token:`, or LIVEKIT_API_KEY and LIVEKIT_API_SECRET in the "
            "environment or in `secrets_file:`)"
        )
    token = mint_token(key, secret, room=cfg.room, identity=cfg.identity, name=cfg.name, ttl_s=cfg.token_ttl_s,
                       attributes=attributes)
    return url, token
