"""Config loading: validation errors name the file, the field and the fix; env overrides; registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.registry import available, load_plugin, register


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_minimal_config_validates(tmp_path: Path) -> None:
    p = write(tmp_path, "llm: {type: scripted}\nsink: {type: null}\ntts: {type: scripted_missing}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    msg = str(e.value)
    assert str(p) in msg and "tts.type" in msg and "scripted_missing" in msg and "choose one of" in msg


def test_unknown_field_names_file_field_and_fix(tmp_path: Path) -> None:
    p = write(tmp_path, "session: {fps: 25, colour: red}\nllm: {type: scripted}\nsink: {type: null}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    msg = str(e.value)
    assert str(p) in msg and "session.colour" in msg and "remove it or check its spelling" in msg


def test_bad_value_in_plugin_section(tmp_path: Path) -> None:
    p = write(tmp_path, "llm: {type: scripted, first_token_s: -1}\nsink: {type: null}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert "llm.first_token_s" in str(e.value) and "-1" in str(e.value)


def test_missing_required_section(tmp_path: Path) -> None:
    p = write(tmp_path, "llm: {type: scripted}\n")
    with pytest.raises(ConfigError, match="section is missing"):
        load_config(p, environ={})


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "empty"), ("{unclosed", "not valid YAML"), ("- a\n- b\n", "mapping"), ("bogus: 1\n", "unknown section")],
)
def test_broken_files(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, text), environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_env_overrides_nested_fields() -> None:
    # config validation only: stand-in plugin names mapped onto a real plugin class
    register("tts", "cfgtest", "plugins.llm_scripted:ScriptedLLM")
    register("generator", "cfgtest", "plugins.llm_scripted:ScriptedLLM")
    raw = {
        "llm": {"type": "scripted"},
        "tts": {"type": "cfgtest"},
        "generator": {"type": "cfgtest"},
        "sink": {"type": "null"},
    }
    env = {"FLOWACT__SESSION__FPS": "30", "FLOWACT__LLM__FIRST_TOKEN_S": "0.5", "OTHER": "x"}
    cfg = parse_config(raw, environ=env)
    assert cfg.session.fps == 30
    assert cfg.plugins["llm"].config.first_token_s == 0.5  # type: ignore[attr-defined]


def test_plugin_import_failure_names_the_extra() -> None:
    register("tts", "broken_engine", "module_that_does_not_exist:Engine")
    with pytest.raises(ConfigError, match="pip install"):
        load_plugin("tts", "broken_engine")


def test_registry_lists_builtin_plugins_without_importing_them() -> None:
    import subprocess
    import sys

    names = available("sink")
    assert {"file", "livekit", "preview", "null"} <= set(names)
    assert all(":" in target for target in names.values())
    code = (
        "import sys; from agent.registry import available; available('sink'); available('tts');"
        "print(any(m.startswith(('plugins.transport_livekit', 'plugins.tts_', 'livekit')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


BASE = (
    "session: {fps: 25, portrait: a.jpg}\ninput: {type: stdin}\ntts: {type: espeak}\n"
    'generator: {type: portrait}\nsink: {type: "null"}\n'
)


def test_overrides_replace_remove_and_set_fields(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    cfg = load_config(p, environ={}, overrides={
        "sink": {"type": "file", "path": "out/x.mp4"},  # a section is replaced whole
        "input": None,  # removed
        "session.portrait": "b.jpg",  # one field; the file's other session fields stay
        "llm.type": "scripted",  # dotted keys create a missing section
    })
    assert cfg.plugins["sink"].name == "file" and cfg.plugins["sink"].config.path == "out/x.mp4"  # type: ignore[attr-defined]
    assert "input" not in cfg.plugins and cfg.plugins["llm"].name == "scripted"
    assert cfg.session.portrait == "b.jpg" and cfg.session.fps == 25


def test_overrides_beat_env_and_bad_overrides_are_config_errors(tmp_path: Path) -> None:
    p = write(tmp_path, BASE)
    env = {"FLOWACT__SESSION__FPS": "30", "FLOWACT__SESSION__WIDTH": "640", "FLOWACT__LLM__BASE_URL": "http://x/v1"}
    cfg = load_config(p, overrides={"session.fps": 20, "llm": None}, environ=env)
    assert cfg.session.fps == 20 and cfg.session.width == 640 and cfg.plugin("llm") is None
    with pytest.raises(ConfigError, match=r"override 'session.portrait.x': session.portrait is not a section"):
        load_config(p, environ={}, overrides={"session.portrait.x": 1})
    with pytest.raises(ConfigError, match=r"session.fps.*less than or equal to 60"):
        load_config(p, environ={}, overrides={"session.fps": 99})


def test_public_api_exports_the_session_lazily() -> None:
    import agent
    from agent.session import AgentSession

    assert agent.AgentSession is AgentSession and agent.load_config is load_config
    with pytest.raises(AttributeError):
        agent.NoSuchThing  # noqa: B018


def test_unquoted_null_type_says_to_quote_it(tmp_path: Path) -> None:
    p = write(tmp_path, "tts: {type: espeak}\ngenerator: {type: portrait}\nsink: {type: null}\n")
    with pytest.raises(ConfigError, match=r"sink.type: YAML reads `null` as nothing; write type: \"null\""):
        load_config(p, environ={})
