"""Local inputs: a WAV/audio file (paced like a microphone), typed lines on stdin, a script file."""

from plugins.input_local.config import NoInputConfig, ScriptInputConfig, StdinInputConfig, WavInputConfig
from plugins.input_local.inputs import NoInput, ScriptInput, StdinInput, WavInput, read_audio_file

__all__ = [
    "NoInput",
    "NoInputConfig",
    "ScriptInput",
    "ScriptInputConfig",
    "StdinInput",
    "StdinInputConfig",
    "WavInput",
    "WavInputConfig",
    "read_audio_file",
]
