"""Plugin registry: (kind, type name) -> plugin class, imported lazily.

Built-in plugins are listed as "module:Class" strings so importing the registry imports no engine.
Third-party plugins register through the entry-point group `flowact_agent.plugins` with names
`<kind>.<type>` (e.g. `tts.my_engine = my_pkg.tts:MyTTS`). A plugin class has a nested or
module-level pydantic `Config` (exposed as `PluginClass.Config`) and is built as
`PluginClass(config, **context)`: every kind but `generator` gets the session's `clock=` (a
`flowact.clock.Clock`); VAD and input get `sample_rate=`, TTS its output `sample_rate=`, the
generator `width=`, `height=`, `fps=`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from agent.errors import ConfigError

__all__ = [
    "BUILTIN_PLUGINS",
    "KINDS",
    "available",
    "load_plugin",
    "plugin_config_class",
    "register",
]

KINDS = ("input", "vad", "asr", "llm", "tts", "generator", "sink", "control")

BUILTIN_PLUGINS: dict[str, dict[str, str]] = {
    "input": {
        "wav": "plugins.input_local:WavInput",
        "script": "plugins.input_local:ScriptInput",
        "stdin": "plugins.input_local:StdinInput",
        "spoken_script": "plugins.input_local:SpokenScriptInput",
        "none": "plugins.input_local:NoInput",
    },
    "vad": {
        "energy": "plugins.vad_energy:EnergyVAD",
        "silero": "plugins.vad_silero:SileroVAD",
        "webrtc": "plugins.vad_webrtc:WebrtcVAD",
    },
    "asr": {
        "faster_whisper": "plugins.asr_faster_whisper:FasterWhisperASR",
    },
    "llm": {
        "openai": "plugins.llm_openai:OpenAILLM",
        "scripted": "plugins.llm_scripted:ScriptedLLM",
    },
    "tts": {
        "piper": "plugins.tts_piper:PiperTTS",
        "espeak": "plugins.tts_espeak:EspeakTTS",
        "coqui": "plugins.tts_coqui:CoquiTTS",
    },
    "generator": {
        "portrait": "flowact.generator:PortraitGenerator",
    },
    "sink": {
        "file": "plugins.sink_file:FileSink",
        "livekit": "plugins.transport_livekit:LiveKitSink",
        "preview": "plugins.preview_web:PreviewSink",
        "null": "plugins.sink_file:NullSink",
    },
    "control": {
        "mqtt": "plugins.control_mqtt:MqttControl",
    },
}

_EXTRA: dict[str, dict[str, str]] = {}


def register(kind: str, name: str, target: str) -> None:
    """Register a plugin at run time ("module:Class")."""
    if kind not in KINDS:
        raise ConfigError(f"register({kind!r}, {name!r}, ...): unknown plugin kind {kind!r}; "
                          f"use one of {', '.join(KINDS)}")
    _EXTRA.setdefault(kind, {})[name] = target


def _entry_point_targets(kind: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in entry_points(group="flowact_agent.plugins"):
        k, _, name = ep.name.partition(".")
        if k == kind and name:
            found[name] = ep.value
    return found


def available(kind: str) -> dict[str, str]:
    """All known plugin names for a kind -> their "module:Class" targets."""
    merged = dict(BUILTIN_PLUGINS.get(kind, {}))
    merged.update(_entry_point_targets(kind))
    merged.update(_EXTRA.get(kind, {}))
    return merged


def load_plugin(kind: str, name: str) -> type[Any]:
    """Import and return the plugin class; errors say which extra to install."""
    targets = available(kind)
    if name not in targets:
        choices = ", ".join(sorted(targets)) or "none"
        raise ConfigError(f"{kind}.type: unknown {kind} plugin {name!r}; choose one of: {choices}")
    module_name, _, attr = targets[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise ConfigError(
            f"{kind}.type: plugin {name!r} cannot be imported (missing module {missing!r}); "
            f"install its extra, e.g. `pip install 'flowact-agent[{_extra_for(kind, name)}]'`"
        ) from e
    try:
        cls: type[Any] = getattr(module, attr)
    except AttributeError as e:
        raise ConfigError(f"{kind}.type: {targets[name]} does not exist") from e
    return cls


def plugin_config_class(cls: type[Any]) -> type[BaseModel]:
    config_cls = getattr(cls, "Config", None)
    if not (isinstance(config_cls, type) and issubclass(config_cls, BaseModel)):
        raise ConfigError(f"plugin {cls.__name__} has no pydantic Config class")
    return config_cls


def _extra_for(kind: str, name: str) -> str:
    return {
        ("asr", "faster_whisper"): "whisper",
        ("vad", "silero"): "whisper",
        ("llm", "openai"): "openai",
        ("tts", "piper"): "piper",
        ("tts", "coqui"): "coqui",
        ("sink", "livekit"): "livekit",
        ("control", "mqtt"): "mqtt",
        ("sink", "preview"): "preview",
    }.get((kind, name), "all")
