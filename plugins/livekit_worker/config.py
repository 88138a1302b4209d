"""The worker's own settings (`flowact-agent worker --config worker.yaml`): pydantic, read once.

    agent_name: flowact-avatar          # explicit dispatch: rooms ask for this name
    personas:                           # what dispatch metadata may choose: name -> flowact config file
      support: ../../configs/support_bot.yaml
    default_persona: support
    portraits_dir: ../assets            # dispatch metadata may pick a portrait file from here, nothing else
    load_threshold: 0.7                 # the worker reports itself full at this load (see load.py)

Relative paths are relative to the worker file. Server URL and credentials come from the environment
(LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET) or `secrets_file`, as for the room transport.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.config import read_yaml
from agent.errors import ConfigError
from flowact.reference import PORTRAIT_SUFFIXES

__all__ = ["WorkerConfig", "load_worker_config"]


class WorkerConfig(BaseModel):
    """One worker process: which rooms it serves and how it shares the machine between them."""

    model_config = ConfigDict(extra="forbid")

    agent_name: str = Field("flowact-avatar", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    personas: dict[str, Path] = Field(..., min_length=1, description="persona name -> flowact config file")
    default_persona: str | None = None
    portraits_dir: Path | None = Field(None, description="the only directory dispatch metadata may pick from")
    languages: list[str] = Field(default_factory=lambda: ["en"], description="languages metadata may ask for")
    identity: str = Field("flowact-avatar", pattern=r"^[A-Za-z0-9_.-]+$", description="participant identity prefix")
    name: str = "Avatar"
    load_threshold: float = Field(0.7, gt=0, le=1.0, description="report full at this load (0..1)")
    num_idle_processes: int = Field(1, ge=0, le=16, description="prewarmed job processes kept ready")
    drain_timeout_s: int = Field(600, ge=1, description="SIGTERM: how long running jobs may take to finish")
    http_port: int = Field(8081, ge=0, le=65535, description="health endpoint: GET / (200 OK / 503), GET /worker")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Prometheus GET /metrics (None: off)")
    host: str = "127.0.0.1"
    secrets_file: Path | None = None
    greeting_max_chars: int = Field(300, ge=1, le=2000)

    @model_validator(mode="after")
    def _check(self) -> WorkerConfig:
        if self.default_persona is None:
            self.default_persona = next(iter(self.personas))
        if self.default_persona not in self.personas:
            raise ValueError(f"default_persona {self.default_persona!r} is not one of personas "
                             f"{sorted(self.personas)}")
        for name in self.personas:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"persona name {name!r}: letters, digits, '-' and '_' only")
        return self

    def resolved(self, base: Path) -> WorkerConfig:
        """Paths made absolute against `base` (the worker file's directory) and checked."""
        personas = {k: (base / v).resolve() for k, v in self.personas.items()}
        for name, path in personas.items():
            if not path.is_file():
                raise ConfigError(f"personas.{name}: {path}: file not found")
        portraits = (base / self.portraits_dir).resolve() if self.portraits_dir is not None else None
        if portraits is not None and not portraits.is_dir():
            raise ConfigError(f"portraits_dir: {portraits}: not a directory")
        secrets = (base / self.secrets_file).resolve() if self.secrets_file is not None else None
        return self.model_copy(update={"personas": personas, "portraits_dir": portraits, "secrets_file": secrets})

    def allowed_portraits(self) -> list[Path]:
        """Every portrait file metadata may choose (analysed once when a process prewarms)."""
        if self.portraits_dir is None:
            return []
        return sorted(p for p in self.portraits_dir.iterdir() if p.is_file() and p.suffix.lower() in PORTRAIT_SUFFIXES)


def load_worker_config(path: str | Path) -> WorkerConfig:
    """Read and validate a worker file; errors name the file and the field."""
    path = Path(path)
    raw: Any = read_yaml(path, what="worker file (e.g. examples/fleet/worker.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        cfg = WorkerConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where + ': ' if where else ''}{msg}") from None
    return cfg.resolved(path.resolve().parent)
