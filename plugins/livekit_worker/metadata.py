"""Dispatch metadata: what a room may ask of the worker, validated before the job is accepted.

The metadata of an explicit dispatch (`lk dispatch create --agent-name flowact-avatar --metadata '{...}'`,
or `AgentDispatchService.create_dispatch`) is JSON:

    {"persona": "support", "portrait": "grace_hopper.jpg", "language": "en", "greeting": "Hi!"}

Every field is optional. `persona` is a name from the worker's `personas`; `portrait` is a file
name inside the worker's `portraits_dir` (never a path, a URL or anything outside that directory);
`language` is one of the worker's `languages`; `greeting` is plain text. Anything else is refused with
a reason (`InputError`), which the worker logs and answers by declining the job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import InputError
from flowact.reference import PORTRAIT_SUFFIXES
from plugins.livekit_worker.config import WorkerConfig

__all__ = ["DispatchMetadata", "JobSettings", "parse_metadata"]

MAX_METADATA_BYTES = 4096


class DispatchMetadata(BaseModel):
    """The JSON shape; cross-checks against the worker's allowed sets are in `parse_metadata`."""

    model_config = ConfigDict(extra="forbid")

    persona: str | None = Field(None, min_length=1, max_length=64)
    portrait: str | None = Field(None, min_length=1, max_length=128)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    greeting: str | None = Field(None, max_length=2000)


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What a job runs with: resolved, allowed values only."""

    persona: str
    config_path: Path
    portrait: Path | None
    language: str | None
    greeting: str | None


def parse_metadata(raw: str, cfg: WorkerConfig) -> JobSettings:
    """Validate a dispatch's metadata against the worker's allowed sets; `InputError` says why not."""
    if len(raw.encode()) > MAX_METADATA_BYTES:
        raise InputError(f"metadata: larger than {MAX_METADATA_BYTES} bytes")
    data: object = {}
    if raw.strip():
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"metadata: not JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(data, dict):
        raise InputError("metadata: must be a JSON object")
    try:
        meta = DispatchMetadata.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"metadata.{where}: {first['msg']}") from None
    persona = meta.persona or cfg.default_persona or ""
    if persona not in cfg.personas:
        allowed = ", ".join(sorted(cfg.personas))
        raise InputError(f"metadata.persona: unknown persona {persona!r}; allowed: {allowed}")
    if meta.language is not None and meta.language not in cfg.languages:
        allowed = ", ".join(cfg.languages)
        raise InputError(f"metadata.language: {meta.language!r} is not served here; allowed: {allowed}")
    greeting = meta.greeting
    if greeting is not None:
        if len(greeting) > cfg.greeting_max_chars:
            raise InputError(f"metadata.greeting: longer than {cfg.greeting_max_chars} characters")
        if any(ord(c) < 32 and c not in "\n\t" for c in greeting):
            raise InputError("metadata.greeting: control characters are not allowed")
    return JobSettings(persona=persona, config_path=cfg.personas[persona],
                       portrait=_portrait(meta.portrait, cfg) if meta.portrait is not None else None,
                       language=meta.language, greeting=greeting)


def _portrait(name: str, cfg: WorkerConfig) -> Path:
    """A file directly inside `portraits_dir`, by bare file name only."""
    if cfg.portraits_dir is None:
        raise InputError("metadata.portrait: this worker does not allow choosing a portrait")
    if "://" in name or name.startswith("data:"):
        raise InputError("metadata.portrait: a file name from the portraits directory, not a URL")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise InputError("metadata.portrait: a bare file name from the portraits directory, not a path")
    if Path(name).suffix.lower() not in PORTRAIT_SUFFIXES:
        raise InputError(f"metadata.portrait: {name!r} is not an image ({', '.join(PORTRAIT_SUFFIXES)})")
    path = (cfg.portraits_dir / name).resolve()
    if path.parent != cfg.portraits_dir.resolve():  # a symlink out of the directory
        raise InputError(f"metadata.portrait: {name!r} is outside the portraits directory")
    if not path.is_file():
        raise InputError(f"metadata.portrait: {name!r} is not in the portraits directory")
    return path
