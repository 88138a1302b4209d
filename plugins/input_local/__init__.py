"""Local inputs: a WAV/audio file (paced like a microphone), typed lines on stdin, a script file."""

from plugins.input_local.config import NoInputConfig, ScriptInputConfig, StdinInputConfig, WavInputConfig
from plugins.input_local.inputs import NoInput, ScriptInput, StdinInput, WavInput, read_audio_file
from plugins.input_local.spoken import SpokenScriptInput, SpokenScriptInputConfig

__all__ = [
    "NoInput",
    "NoInputConfig",
    "ScriptInput",
    "ScriptInputConfig",
    "SpokenScriptInput",
    "SpokenScriptInputConfig",
    "StdinInput",
    "StdinInputConfig",
    "WavInput",
    "WavInputConfig",
    "read_audio_file",
]
