"""Configuration: YAML file + environment overrides -> validated pydantic models.

Each plugin section is discriminated on `type`: the registry finds the plugin class and its own
pydantic `Config` validates the rest of the section. Every error names the file, the field and the
fix. Environment overrides use `FLOWACT__SECTION__FIELD=value` (value parsed as YAML), e.g.
`FLOWACT__LLM__BASE_URL=http://127.0.0.1:8080/v1`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError
from agent.registry import load_plugin, plugin_config_class

__all__ = [
    "AgentConfig",
    "PluginSpec",
    "SessionConfig",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "FLOWACT__"


class SessionConfig(BaseModel):
    """Session-wide settings (media timeline, conversation)."""

    model_config = ConfigDict(extra="forbid")

    fps: int = Field(25, ge=1, le=60)
    frames_per_chunk: int = Field(4, ge=1, le=32)
    sample_rate: int = Field(24000, description="output audio rate (Hz)")
    input_sample_rate: int = Field(16000, description="user audio rate fed to VAD/ASR (Hz)")
    width: int = Field(854, ge=64, le=3840)
    height: int = Field(480, ge=64, le=2160)
    portrait: str = "examples/assets/grace_hopper.jpg"
    system_prompt: str = (
        "You are a friendly, concise assistant speaking through a video avatar. "
        "Answer in one to three short spoken sentences."
    )
    greeting: str = ""
    history_turns: int = Field(8, ge=0, le=200)
    history_chars: int = Field(6000, ge=0, description="bound on remembered conversation text")
    barge_in: bool = True
    late_frame_policy: str = Field("repeat", pattern="^(repeat|drop)$")
    queue_chunks: int = Field(8, ge=1, le=256, description="bounded queue depth between stages")
    realtime: bool = Field(True, description="pace output in wall time (False: as fast as possible)")
    idle_tail_s: float = Field(1.0, ge=0.0, description="idle video after the last turn (offline)")


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """A validated plugin section: the class to build and its validated config."""

    kind: str
    name: str
    cls: Any
    config: BaseModel

    def build(self, **context: Any) -> Any:
        return self.cls(self.config, **context)


class AgentConfig(BaseModel):
    """The whole validated configuration."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    source: str = "<memory>"
    session: SessionConfig = SessionConfig()
    plugins: dict[str, PluginSpec] = {}

    def plugin(self, kind: str) -> PluginSpec | None:
        return self.plugins.get(kind)


_PLUGIN_SECTIONS = ("input", "vad", "asr", "llm", "tts", "generator", "sink", "control")
_REQUIRED = ("tts", "generator", "sink")


def _fmt_loc(section: str, loc: tuple[int | str, ...]) -> str:
    return ".".join([section, *(str(p) for p in loc)])


def _validation_message(source: str, section: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        field = _fmt_loc(section, err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            fix = "remove it or check its spelling"
        elif err["type"] == "missing":
            fix = "add it"
        else:
            fix = f"got {err.get('input')!r}"
        lines.append(f"{source}: {field}: {msg} ({fix})")
    return "; ".join(lines)


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"env {key}: {'.'.join(path[:-1])} is not a section")
            node = child
        try:
            node[path[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"env {key}: value is not valid YAML: {e}") from e


def parse_config(
    raw: Mapping[str, Any], *, source: str = "<memory>", environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Validate a config mapping (as loaded from YAML), applying env overrides."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    _apply_env(data, os.environ if environ is None else environ)
    unknown = set(data) - {"session", *_PLUGIN_SECTIONS}
    if unknown:
        allowed = ", ".join(("session", *_PLUGIN_SECTIONS))
        raise ConfigError(f"{source}: unknown section(s) {sorted(map(str, unknown))}; allowed: {allowed}")
    try:
        session = SessionConfig.model_validate(data.get("session") or {})
    except ValidationError as e:
        raise ConfigError(_validation_message(source, "session", e)) from e
    plugins: dict[str, PluginSpec] = {}
    for kind in _PLUGIN_SECTIONS:
        section = data.get(kind)
        if section is None:
            if kind in _REQUIRED:
                raise ConfigError(f"{source}: {kind}: section is missing (add `{kind}: {{type: ...}}`)")
            continue
        if not isinstance(section, dict) or "type" not in section:
            raise ConfigError(f"{source}: {kind}.type: missing (every plugin section needs `type:`)")
        body = dict(section)
        name = str(body.pop("type"))
        try:
            cls = load_plugin(kind, name)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e.__cause__
        try:
            cfg = plugin_config_class(cls).model_validate(body)
        except ValidationError as e:
            raise ConfigError(_validation_message(source, kind, e)) from e
        plugins[kind] = PluginSpec(kind=kind, name=name, cls=cls, config=cfg)
    return AgentConfig(source=source, session=session, plugins=plugins)


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Load and validate a YAML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found (pass an existing YAML file, e.g. configs/local.yaml)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: `[[[[...` nesting
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if raw is None:
        raise ConfigError(f"{p}: the file is empty")
    return parse_config(raw, source=str(p), environ=environ)
