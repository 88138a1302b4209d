"""Configuration: YAML file + overrides + environment -> validated pydantic models.

Each plugin section is discriminated on `type`: the registry finds the plugin class and its own
pydantic `Config` validates the rest of the section. Every error names the file, the field and the
fix. `load_config(path, overrides=...)` is the one public entry point; layers apply in this order,
each over the one before:

1. the YAML file (`read_yaml` is the project's one YAML file reader);
2. environment variables `FLOWACT__SECTION__FIELD=value` (value parsed as YAML), e.g.
   `FLOWACT__LLM__BASE_URL=http://127.0.0.1:8080/v1` (deployment settings, secrets' locations);
3. `overrides` (what the calling program decides, e.g. the CLI's `--output`), a mapping whose keys
   are either a section name or a dotted path:
   - `{"sink": {"type": "file", "path": "out/x.mp4"}}` replaces the whole section (another plugin
     `type` takes other fields, so sections are never merged);
   - `{"input": None}` removes the section;
   - `{"session.portrait": "me.jpg", "llm.local_server.model": "..."}` sets one field, creating
     the sections on the way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.errors import ConfigError, UserError
from agent.kb import KnowledgeConfig
from agent.record import RecordConfig
from agent.registry import KINDS, load_plugin, plugin_config_class
from agent.tutor import TutorConfig

__all__ = [
    "AgentConfig",
    "PluginSpec",
    "SessionConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
    "read_yaml",
]

ENV_PREFIX = "FLOWACT__"


class SessionConfig(BaseModel):
    """Session-wide settings (media timeline, conversation)."""

    model_config = ConfigDict(extra="forbid")

    fps: int = Field(25, ge=1, le=60)
    frames_per_chunk: int = Field(
        2, ge=1, le=32,
        description="frames per media chunk; speech waits for the next chunk and the chunk before it is rendered "
                    "one chunk ahead, so this sets the media lead (2 at 25 fps: 80 ms; 4 added ~0.16 s to each answer)",
    )
    sample_rate: int = Field(24000, description="output audio rate (Hz)")
    input_sample_rate: int = Field(16000, description="user audio rate fed to VAD/ASR (Hz)")
    width: int = Field(854, ge=64, le=3840)
    height: int = Field(480, ge=64, le=2160)
    portrait: str = "examples/assets/grace_hopper.jpg"
    face: int | tuple[float, float, float, float] | None = Field(
        None, description="which face of a group photo to animate: an index (left to right, as the refusal "
        "lists them) or a box [x0, y0, x1, y1] in the photo's pixels; passed to the generator as its `face`",
    )
    isolate_face: bool = Field(
        False, description="a group photo: show the chosen person alone (the other heads left out of the "
        "frame or out of focus); passed to the generator as its `isolate_face`",
    )
    system_prompt: str = (
        "You are a friendly, concise assistant speaking through a video avatar. "
        "Answer in one to three short spoken sentences."
    )
    greeting: str = ""
    history_turns: int = Field(8, ge=0, le=200)
    history_chars: int = Field(6000, ge=0, description="bound on remembered conversation text")
    barge_in: bool = True
    first_clause: bool = Field(True, description="send the reply's first clause to TTS, not its first sentence")
    first_clause_words: int = Field(
        5, ge=2, le=40, description="the first clause ends at punctuation or after this many words (fewer: "
        "the first audio comes sooner, with a break in the first sentence's melody)",
    )
    early_answer: bool = Field(
        True, description="an early transcript (before the end of turn is decided) begins the answer, held "
        "until the end of turn confirms the same words (cancelled otherwise); False: it only primes the LLM's "
        "prompt cache",
    )
    continue_window_s: float = Field(
        2.5, ge=0.0, description="voice onset this soon after a question, before the answer plays: the user "
        "goes on with the same question (one answer to the whole of it), not a barge-in",
    )
    warmup_timeout_s: float = Field(90.0, gt=0, description="longest wait for engine warm-up before listening")
    late_frame_policy: str = Field("repeat", pattern="^(repeat|drop)$")
    realtime: bool = Field(True, description="pace output in wall time (False: as fast as possible)")
    idle_tail_s: float = Field(1.0, ge=0.0, description="idle video after the last turn (offline)")
    malloc_arenas: int | None = Field(
        2, ge=1, le=64, description="glibc malloc arenas for the process's threads (null: glibc's default, 8 per "
        "core; each thread's arena keeps what it freed, so RSS creeps up in steps over a long session)",
    )
    malloc_mmap_threshold_kb: int | None = Field(
        None, ge=64, le=32768, description="glibc: blocks this large or larger are mapped on their own and "
        "returned to the system when freed, and an arena's free top beyond 4x this is returned at once (null: "
        "glibc's dynamic thresholds, which keep a turn's large buffers, ~100 MB, until the next trim). 8192, "
        "measured over an hour's soak against null: RSS p5-p95 691-785 MB against 714-879, the same CPU; at "
        "1024 every frame-sized buffer was a fresh mapping and rendering slowed",
    )
    malloc_trim_s: float = Field(
        60.0, ge=0.0, description="give freed native memory back to the system this often, between turns "
        "(glibc malloc_trim; 0: never)",
    )

    @model_validator(mode="after")
    def _whole_chunks(self) -> SessionConfig:
        if (self.frames_per_chunk * self.sample_rate) % self.fps:
            raise ValueError(  # pydantic turns this into a ValidationError -> ConfigError naming `session`
                f"sample_rate {self.sample_rate} Hz gives no whole number of audio samples per "
                f"{self.frames_per_chunk}-frame chunk at {self.fps} fps; use e.g. 24000 or 16000 Hz at 25 fps"
            )
        return self


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
    knowledge: KnowledgeConfig | None = None
    record: RecordConfig | None = None
    tutor: TutorConfig | None = None

    def plugin(self, kind: str) -> PluginSpec | None:
        return self.plugins.get(kind)


PLUGIN_SECTIONS = KINDS  # one section per plugin kind
APP_SECTIONS: dict[str, type[BaseModel]] = {"knowledge": KnowledgeConfig, "record": RecordConfig, "tutor": TutorConfig}
"""Application sections (no `type:`): a knowledge base, the kept record, a tutor's lesson."""
REQUIRED_SECTIONS = ("tts", "generator", "sink")


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
        elif not err["loc"]:  # a check across fields: the message says what to change
            lines.append(f"{source}: {field}: {msg}")
            continue
        else:
            fix = f"got {err.get('input')!r}"
        lines.append(f"{source}: {field}: {msg} ({fix})")
    return "; ".join(lines)


def _set_path(raw: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(path[: i + 1])} is not a section (it is {child!r})")
        else:
            child = node[part] = dict(child)  # never mutate the caller's mappings
        node = child
    node[path[-1]] = value


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `raw` with `overrides` applied (see the module docstring for the key forms)."""
    data: dict[str, Any] = dict(raw)
    for key, value in overrides.items():
        path = [p for p in str(key).split(".") if p]
        if not path:
            raise ConfigError(f"override {key!r}: empty key (use a section name or `section.field`)")
        if len(path) == 1 and value is None:
            data.pop(path[0], None)
        elif len(path) == 1:
            data[path[0]] = dict(value) if isinstance(value, Mapping) else value
        else:
            _set_path(data, path, value, f"override {key!r}")
    return data


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"env {key}: value is not valid YAML: {e}") from e
        _set_path(raw, path, parsed, f"env {key}")


def parse_config(
    raw: Mapping[str, Any], *, source: str = "<memory>", environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Validate a config mapping (as loaded from YAML), applying env overrides."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    _apply_env(data, os.environ if environ is None else environ)
    unknown = set(data) - {"session", *PLUGIN_SECTIONS, *APP_SECTIONS}
    if unknown:
        allowed = ", ".join(("session", *PLUGIN_SECTIONS, *APP_SECTIONS))
        raise ConfigError(f"{source}: unknown section(s) {sorted(map(str, unknown))}; allowed: {allowed}")
    try:
        session = SessionConfig.model_validate(data.get("session") or {})
    except ValidationError as e:
        raise ConfigError(_validation_message(source, "session", e)) from e
    plugins: dict[str, PluginSpec] = {}
    for kind in PLUGIN_SECTIONS:
        section = data.get(kind)
        if section is None:
            if kind in REQUIRED_SECTIONS:
                raise ConfigError(f"{source}: {kind}: section is missing (add `{kind}: {{type: ...}}`)")
            continue
        if not isinstance(section, dict) or "type" not in section:
            raise ConfigError(f"{source}: {kind}.type: missing (every plugin section needs `type:`)")
        body = dict(section)
        if body["type"] is None:
            raise ConfigError(f'{source}: {kind}.type: YAML reads `null` as nothing; write type: "null" (quoted)')
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
    apps: dict[str, Any] = {}
    for section, model in APP_SECTIONS.items():
        if data.get(section) is not None:
            try:
                apps[section] = model.model_validate(data[section])
            except ValidationError as e:
                raise ConfigError(_validation_message(source, section, e)) from e
    return AgentConfig(source=source, session=session, plugins=plugins, **apps)


def read_yaml(path: str | Path, *, what: str = "config file", error: type[UserError] = ConfigError) -> Any:
    """Read one YAML file; a missing, undecodable or empty file raises `error` naming the path."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} not found (pass an existing YAML file)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: `[[[[...` nesting
        raise error(f"{p}: not valid YAML ({type(e).__name__}: {e})") from e
    if data is None:
        raise error(f"{p}: the file is empty")
    return data


def load_config(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Load and validate a YAML config file, with env and `overrides` applied (module docstring).

    `environ` defaults to `os.environ`; pass `{}` to ignore the environment.
    """
    raw = read_yaml(path, what="config file (e.g. configs/local.yaml)")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    _apply_env(data, os.environ if environ is None else environ)
    return parse_config(apply_overrides(data, overrides or {}), source=str(path), environ={})
