"""Things a user must fix raise the project's user errors (ConfigError / InputError), never ValueError."""

from __future__ import annotations

import numpy as np
import pytest

from agent.commands import parse_command
from agent.config import parse_config
from agent.errors import ConfigError, FlowActError, InputError, UserError
from agent.frames import AudioChunk
from agent.registry import register
from plugins.preview_web.wire import HEADER, MIC, parse_mic
from plugins.vad_energy import EnergyVAD


def test_error_tree() -> None:
    assert issubclass(ConfigError, UserError) and issubclass(InputError, UserError)
    assert issubclass(UserError, FlowActError) and not issubclass(ConfigError, ValueError)


def test_register_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown plugin kind 'speaker'; use one of input"):
        register("speaker", "x", "pkg:Cls")


def test_session_rates_without_whole_chunks_are_a_config_error() -> None:
    raw = {"session": {"fps": 30, "frames_per_chunk": 1, "sample_rate": 8000},
           "tts": {"type": "espeak"}, "generator": {"type": "portrait"}, "sink": {"type": "null"}}
    with pytest.raises(ConfigError, match=r"cfg.yaml: session: .*8000 Hz gives no whole number") as e:
        parse_config(raw, source="cfg.yaml", environ={})
    assert "{" not in str(e.value)  # names the fields, does not dump the section


def test_command_kind_mismatch_is_an_input_error() -> None:
    with pytest.raises(InputError, match="does not match its topic's 'say'"):
        parse_command("say", {"kind": "emotion", "name": "happy"})


async def test_vad_fed_the_wrong_rate_says_how_to_fix_it() -> None:
    vad = EnergyVAD(sample_rate=16000)
    with pytest.raises(InputError, match="expects 16000 Hz audio, got 8000 Hz.*input_sample_rate"):
        await vad.feed(AudioChunk(np.zeros(80, np.int16), 8000))


def test_bad_mic_message_is_an_input_error() -> None:
    with pytest.raises(InputError, match="shorter than"):
        parse_mic(b"\x03")
    with pytest.raises(InputError, match="outside 8000..96000"):
        parse_mic(HEADER.pack(MIC, 100, 0.0) + b"\x00\x00")
