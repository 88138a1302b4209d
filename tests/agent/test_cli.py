"""The CLI: one-shot `say`, the offline demo, and user errors (one line, exit code 2, no file)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.fixtures.mp4 import audible_spans, audio_track, mouth_box, video_frames

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def espeak_config(tmp_path: Path) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(
        "session: {portrait: examples/assets/grace_hopper.jpg}\n"
        "llm: {type: scripted}\ntts: {type: espeak}\ngenerator: {type: portrait}\nsink: {type: null}\n"
    )
    return p


def test_check_config_and_schema() -> None:
    r = cli("check-config", "configs/local.yaml")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    r = cli("schema", "control")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    assert "properties" in schema and "visemes" in json.dumps(schema)


@pytest.mark.timeout(300)
def test_say_renders_speech_to_mp4(tmp_path: Path) -> None:
    out = tmp_path / "say.mp4"
    cfg = espeak_config(tmp_path)
    r = cli("say", "--text", "Hello there. [smile] Nice to meet you!", "-o", str(out), "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    frames, fps = video_frames(out)
    audio, sr = audio_track(out)
    assert fps == 25
    assert abs(len(frames) / fps - len(audio) / sr) <= 1 / fps + 2048 / sr  # aligned within a frame
    # all of the synthesized speech is in the file, unclipped and unstretched (within one frame)
    meta = json.loads(out.with_suffix(".json").read_text())
    spans = audible_spans(audio, sr)
    assert len(spans) == 1 and len(meta["turns"]) == 1
    assert abs((spans[0][1] - spans[0][0]) - meta["turns"][0]["speech_span_s"]) <= 1 / fps
    assert_mouth_follows_speech(frames, audio, sr, fps)


def assert_mouth_follows_speech(frames: list[np.ndarray], audio: np.ndarray, sr: int, fps: int) -> None:
    """The mouth region changes while the agent speaks and rests while it is silent."""
    box = mouth_box("examples/assets/grace_hopper.jpg", frames[0].shape[1], frames[0].shape[0])
    motion = np.array([np.abs(frames[i + 1][box].astype(int) - frames[i][box].astype(int)).mean()
                       for i in range(len(frames) - 1)])
    per_frame = sr // fps
    energy = np.array([np.abs(audio[i * per_frame : (i + 1) * per_frame]).mean() for i in range(len(frames) - 1)])
    speaking = energy > 0.02
    # frames well away from any speech (the mouth eases over a few frames)
    near = np.convolve(speaking.astype(float), np.ones(9), mode="same") > 0
    silent = ~near
    assert speaking.sum() > 10 and silent.sum() > 3
    assert motion[speaking].mean() > 2 * motion[silent].mean() + 0.1


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "not found"),
        ("corrupt", "image"),
        ("text", "image"),
        ("noface", "face"),
    ],
)
def test_bad_portrait_is_one_clear_line(tmp_path: Path, setup: str, needle: str) -> None:
    img = tmp_path / "p.jpg"
    if setup == "corrupt":
        img.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    elif setup == "text":
        img.write_text("hello, I am not a picture")
    elif setup == "noface":
        from PIL import Image
        from skimage import data

        Image.fromarray(data.coffee()).save(img)
    out = tmp_path / "o.mp4"
    r = cli("say", "--image", str(img), "--text", "hi", "-o", str(out), "-c", str(espeak_config(tmp_path)))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0].lower(), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("session: {fps: fast}\nllm: {type: scripted}\ntts: {type: espeak}\n"
                   "generator: {type: portrait}\nsink: {type: null}\n")
    r = cli("run", "--config", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "session.fps" in r.stderr and "Traceback" not in r.stderr


def test_bad_audio_input_is_one_clear_line(tmp_path: Path) -> None:
    wav = tmp_path / "q.wav"
    wav.write_bytes(b"RIFF....WAVEfmt garbage")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"input: {{type: wav, path: {wav}}}\nvad: {{type: energy}}\nasr: {{type: faster_whisper}}\n"
                   "llm: {type: scripted}\ntts: {type: espeak}\ngenerator: {type: portrait}\n"
                   f"sink: {{type: file, path: {tmp_path / 'o.mp4'}}}\n")
    r = cli("run", "--config", str(cfg))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error:") and "q.wav" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_demo_mp4_is_written_offline_and_in_sync(tmp_path: Path) -> None:
    """The README's `make demo` path: the support bot (configs/support_bot.yaml) greets, then two spoken
    questions -> VAD -> ASR -> router + order tool / FAQ -> TTS -> face -> MP4, with right answers."""
    out = tmp_path / "demo.mp4"
    env = {**os.environ, "FLOWACT__RECORD__DB": str(tmp_path / "record.sqlite")}  # the kept record, not in ~
    r = subprocess.run([sys.executable, "-m", "agent", "demo", "-o", str(out)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "per-turn latency" in r.stdout
    frames, fps = video_frames(out)
    audio, sr = audio_track(out)
    assert fps == 25 and len(frames) > 25 * 5
    assert abs(len(frames) / fps - len(audio) / sr) <= 1 / fps + 2048 / sr
    with av.open(str(out)) as c:
        assert c.streams.video[0].width == 854 and c.streams.video[0].height == 480
    meta = json.loads(out.with_suffix(".json").read_text())
    turns = [t for t in meta["turns"] if t["speech_s"] > 0]
    assert len(turns) == 3, meta  # the greeting, and both spoken questions heard and answered
    roles = [c["role"] for c in meta["conversation"]]
    assert roles == ["agent", "user", "agent", "user", "agent"], meta["conversation"]
    answers = [c["text"] for c in meta["conversation"] if c["role"] == "agent"]
    # the order's status from the lookup tool, the address rule from the FAQ (not the model's guess)
    assert "1234" in answers[1] and "shipped" in answers[1], answers
    assert "depot" in answers[2], answers
    assert (tmp_path / "record.sqlite").exists()
    spans = audible_spans(audio, sr)
    assert len(spans) == 3
    for (a, b), t in zip(spans, turns, strict=True):
        # each answer whole, in sync: its span in the file is its speech plus any silence played inside it
        # while synthesis fell behind (a starved machine)
        assert abs((b - a) - t["speech_span_s"] - t["speech_gaps_s"]) <= 1 / fps, (spans, turns)
    assert_mouth_follows_speech(frames, audio, sr, fps)


# --- the small wrongs of issue 12 -------------------------------------------------------------------
def test_say_builds_no_llm_even_from_a_config_with_a_local_llm(tmp_path: Path) -> None:
    from agent.cli import say_config

    cfg = say_config("configs/local.yaml", str(tmp_path / "s.mp4"), image="examples/assets/astronaut.png")
    assert sorted(cfg.plugins) == ["generator", "sink", "tts"]  # no llm, input, vad, asr or control
    assert cfg.session.portrait == "examples/assets/astronaut.png" and not cfg.session.realtime
    # end to end: configs/local.yaml's llm section would start llama.cpp; point it at a missing model,
    # so building or starting any LLM fails the command, and say must still succeed
    out = tmp_path / "say.mp4"
    env = {**os.environ, "FLOWACT__LLM__LOCAL_SERVER__MODEL_PATH": str(tmp_path / "no-such-model.gguf")}
    r = subprocess.run([sys.executable, "-m", "agent", "say", "-t", "Hi.", "-o", str(out), "-c", "configs/local.yaml"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert out.exists() and "llama" not in r.stderr.lower()
    # and the poison works: the LLM this config describes cannot start
    from agent import ConfigError, load_config

    llm = load_config("configs/local.yaml", environ=env).plugins["llm"].build()
    with pytest.raises(ConfigError, match="no-such-model.gguf"):
        asyncio.run(llm.start())


async def test_tutor_config_documented_microphone_mode_starts(tmp_path: Path) -> None:
    """examples/tutor/README.md: type or speak on the preview page with configs/tutor.yaml as shipped."""
    from agent import AgentSession, ConfigError, load_config
    from agent.interfaces import AudioInput
    from flowact.types import AgentState

    cfg = load_config(ROOT / "configs" / "tutor.yaml", environ={})
    assert cfg.plugins["sink"].name == "preview" and cfg.plugins["sink"].config.model_dump()["microphone"]
    assert isinstance(cfg.plugins["sink"].build(), AudioInput)
    assert {"vad", "asr"} <= set(cfg.plugins)
    # start it for real (the llama.cpp LLM swapped for the scripted one, the page on a free port);
    # without its vad/asr sections (the config as it was) the microphone mode cannot start
    quick = {"llm": {"type": "scripted"}, "sink.port": 0}
    broken = AgentSession(load_config(ROOT / "configs" / "tutor.yaml", environ={},
                                      overrides={**quick, "vad": None, "asr": None}))
    with pytest.raises(ConfigError, match="audio input needs `vad:` and `asr:`"):
        await broken.start()
    await broken.aclose()
    session = AgentSession(load_config(ROOT / "configs" / "tutor.yaml", environ={}, overrides=quick))
    async with session:  # starts: the page's microphone is its audio input, heard through vad + asr
        assert session.state in AgentState  # the greeting may already be under way


def test_schema_config_validates_the_shipped_configs(tmp_path: Path) -> None:
    import jsonschema
    import yaml

    r = cli("schema", "config")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    configs = [p for p in sorted((ROOT / "configs").glob("*.yaml")) if isinstance(yaml.safe_load(p.read_text()), dict)]
    assert {p.name for p in configs} >= {"local.yaml", "support_bot.yaml", "tutor.yaml"}
    for p in configs:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(p.read_text()))]
        assert not errors, (p.name, errors)
    # each plugin section is a union of the registered plugins' configs, keyed by `type`
    sink_types = {schema["$defs"][v["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["const"]
                  for v in schema["properties"]["sink"]["oneOf"]}
    assert sink_types == {"file", "livekit", "null", "preview"}
    ok = {"tts": {"type": "espeak"}, "generator": {"type": "portrait"}, "sink": {"type": "null"}}
    assert validator.is_valid(ok)
    for bad in ({**ok, "tts": {"type": "espeak", "colour": "red"}}, {**ok, "tts": {"type": "nope"}},
                {k: v for k, v in ok.items() if k != "tts"}, {**ok, "session": {"fps": "fast"}}, {**ok, "extra": {}}):
        assert not validator.is_valid(bad), bad


def test_run_prints_the_live_conversation_and_writes_it_beside_the_output(tmp_path: Path) -> None:
    script = tmp_path / "lines.yaml"
    script.write_text("- {text: 'Hello there.', pause_s: 0}\n- {text: 'Where is my order?', pause_s: 0}\n")
    out = tmp_path / "out" / "session.mp4"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "session: {portrait: examples/assets/grace_hopper.jpg, realtime: false, idle_tail_s: 0.2}\n"
        f"input: {{type: script, path: {script}}}\n"
        "llm: {type: scripted, replies: ['[smile] Hi, nice to meet you.', 'It ships tomorrow.'], first_token_s: 0}\n"
        f"tts: {{type: espeak}}\ngenerator: {{type: portrait}}\nsink: {{type: file, path: {out}}}\n"
    )
    r = cli("run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith(("user:", "agent:"))]
    assert lines == ["user: Hello there.", "agent: Hi, nice to meet you.",
                     "user: Where is my order?", "agent: It ships tomorrow."], r.stdout
    path = tmp_path / "out" / "session.transcript.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [(x["role"], x["text"]) for x in rows] == [
        ("user", "Hello there."), ("agent", "Hi, nice to meet you."),
        ("user", "Where is my order?"), ("agent", "It ships tomorrow."),
    ]
    assert all(b["t"] >= a["t"] for a, b in zip(rows, rows[1:], strict=False))
    assert f"transcript: {path}" in r.stdout and out.exists()
