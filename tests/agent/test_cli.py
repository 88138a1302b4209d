"""The CLI: one-shot `say`, the offline demo, and user errors (one line, exit code 2, no file)."""

from __future__ import annotations

import json
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
    """The README's `make demo` path: spoken questions -> VAD -> ASR -> LLM -> TTS -> face -> MP4."""
    out = tmp_path / "demo.mp4"
    r = cli("demo", "-o", str(out), timeout=600)
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
    assert len(turns) == 2, meta  # both spoken questions were heard and answered
    assert [c["role"] for c in meta["conversation"]] == ["user", "agent", "user", "agent"]
    spans = audible_spans(audio, sr)
    assert len(spans) == 2
    for (a, b), t in zip(spans, turns, strict=True):
        assert abs((b - a) - t["speech_span_s"]) <= 1 / fps  # each answer whole, in sync
    assert_mouth_follows_speech(frames, audio, sr, fps)
