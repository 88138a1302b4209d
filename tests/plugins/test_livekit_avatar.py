"""flowact as a livekit-agents avatar worker (plugins/livekit_avatar), end to end over the wire.

livekit-agents 1.8.9 runs in the main venv beside livekit==1.2.1 (installed without its livekit pin,
see the Makefile); each scenario runs this interpreter in a process of its own inside a private
network namespace: an "agent" participant streams espeak speech with
livekit-agents' own `DataStreamAudioOutput`; the avatar participant runs `AvatarRunner` +
`FlowactVideoGenerator`; the LiveKit-protocol test server decodes what the avatar publishes.
Skips (with the reason) when livekit-agents or the namespace is not available.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.livekit_netns import HERE, ROOT, run_scenario

PYTHON = Path(sys.executable)  # one environment: livekit-agents beside our livekit SDK


def _need_venv() -> None:
    if importlib.util.find_spec("livekit.agents") is None:
        pytest.skip("livekit-agents is not installed (`make setup` installs it: the `livekit-agents` extra "
                    "and `pip install --no-deps livekit-agents==1.8.9`)")


def _scenario(mode: str, timeout_s: float, tail_key: str = "stderr_tail") -> dict[str, Any]:
    """Run one mode of the worker fixture inside a private network namespace."""
    _need_venv()
    res = run_scenario(mode, timeout=timeout_s, python=PYTHON, worker="livekit_avatar_worker.py")
    assert "fatal" not in res, res["fatal"] + str(res.get(tail_key, ""))
    return res


def test_generator_alone_resamples_segments_and_clears(tmp_path: Path) -> None:
    _need_venv()
    out = tmp_path / "unit.json"
    proc = subprocess.run([str(PYTHON), str(HERE / "livekit_avatar_worker.py"), "unit", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.exists(), proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert "fatal" not in res, res["fatal"]
    t = res["tone"]  # 1 s of a 300 Hz stereo tone at 22.05 kHz in
    assert t["audio_rates"] == [24000] and t["audio_channels"] == [1] and t["samples_per_frame"] == [960]
    assert abs(t["audio_s"] - 1.0) <= 0.1 and abs(t["peak_hz"] - 300) < 15
    assert t["n_video"] == t["n_audio"] and t["video_sizes"] == [[320, 240]] and t["video_std"] > 25
    assert "va" * 3 in t["kinds_head"]  # one frame of audio with each speaking video frame
    c = res["clear"]
    assert "a" in c["before"] and c["after"] == ["v"] * 20  # no audio, no segment end after the clear
    assert c["speech_frames_after"] == c["speech_frames_before"]  # queued speech was dropped, not rendered
    assert "divide by fps" in res["errors"]["fps"] and "not found" in res["errors"]["portrait"]
    cmd = res["commands"]  # flowact.command payloads: every bad one refused with its reason, nothing applied
    r = cmd["refused"]
    assert "not JSON" in r["not_json"] and "JSON object" in r["not_object"] and "'say'" in r["say"]
    assert r["unknown_name"] == "unknown emotion 'furious'"
    assert r["gesture_as_emotion"] == "'nod' is a gesture, not an emotion"
    assert r["intensity"].startswith("intensity:") and "shell" in r["extra_field"] and "larger than" in r["too_big"]
    assert cmd["tags_after_refusals"] == [] and cmd["applied"] == "happy:1"
    # against a twin generator that got no command: identical before, a visibly happier face, and back
    # to identical once the 1.5 s emotion expired and eased out
    assert cmd["diff_before"] == 0.0 and cmd["diff_peak"] > 3.0 and cmd["diff_end"] < 0.3
    # only the agent the avatar serves may call flowact.command (or, unnamed, any agent participant)
    callers = res["callers"]
    assert callers["named/agent"] == "ok" and callers["any_agent/agent"] == callers["any_agent/other-agent"] == "ok"
    for who in ("named/user", "named/other-agent", "named/stranger", "any_agent/user", "any_agent/stranger"):
        assert callers[who] == "caller is not this avatar's agent", who
    assert callers["applied"] == "nod,nod,nod"
    w = cmd["happy_weight"]
    assert w["before"] == 0.0 and w["peak"] > 0.9 and 0.5 < w["peak_at_s"] < 2.0 and w["end"] < 0.05


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    res = _scenario("scenario", 80)
    for name in ("join", "start_avatar"):
        assert res[name]["ok"], res[name]
    return res


def _ok(res: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = res[name]
    assert step["ok"], f"{name} failed: {step.get('error')}\n{step.get('tb', '')}"
    return step


def test_avatar_video_is_the_rendered_portrait(result: dict[str, Any]) -> None:
    s = _ok(result, "speak")
    assert s["sizes"] == [[320, 240]] and s["video_n"] >= 50
    # not a solid colour: a textured picture, and the very picture flowact rendered
    assert min(s["frame_std"]) > 25
    assert min(s["corr_ref"]) > 0.85
    # audio-driven visemes: the mouth region moves far more while speaking than while idle
    assert s["mouth_motion_speaking"] > 2.5 * s["mouth_motion_idle"]
    assert s["speech_frames"] >= 0.8 * s["input_s"] * 25


def test_avatar_plays_the_agents_speech(result: dict[str, Any]) -> None:
    s = _ok(result, "speak")
    assert s["heard_rms"] > 500
    # the server hears about as much voiced audio as espeak produced
    assert 0.8 * s["input_voiced_s"] <= s["heard_voiced_s"] <= 1.2 * s["input_voiced_s"]
    assert s["first_audio_after_s"] is not None and s["first_audio_after_s"] < 1.5


def test_playback_started_and_finished_reach_the_agent(result: dict[str, Any]) -> None:
    s = _ok(result, "speak")
    assert s["playout"]["interrupted"] is False
    assert abs(s["playout"]["position"] - s["input_s"]) < 0.3  # lk.playback_finished, whole segment
    assert len(s["started_after_s"]) >= 1 and s["started_after_s"][0] < 1.5  # lk.playback_started
    assert s["input_s"] - 0.2 <= s["playout_s"] <= s["input_s"] + 2.0  # played in real time


def test_expression_commands_reach_the_avatar_over_rpc(result: dict[str, Any]) -> None:
    s = _ok(result, "command")  # the agent calls flowact.command on the avatar with send_avatar_command
    assert s["reply"] == "happy:0.8" and s["nod"] == "nod:1"
    assert s["refused"] == "1500 unknown emotion 'furious'"  # an RpcError with the reason, at the caller
    assert s["tags"] == ["happy:0.8", "nod:1"]


def test_the_avatar_follows_the_agents_state_attribute(result: dict[str, Any]) -> None:
    s = _ok(result, "state")  # the agent sets lk.agent.state, as livekit-agents does
    thinking, listening = s["thinking"], s["listening"]
    assert thinking["followed"] == "thinking" and thinking["after_s"] < 1.0
    assert thinking["control_state"] == "thinking" and thinking["thinking_weight"] > 0.3  # a thoughtful face
    assert listening["followed"] == "listening" and listening["control_state"] == "listening"
    assert listening["thinking_weight"] < 0.1  # eased out again


def test_clear_buffer_stops_the_avatar_quickly(result: dict[str, Any]) -> None:
    s = _ok(result, "interrupt")
    assert s["clears"] == 1  # lk.clear_buffer reached our generator
    (_, position, interrupted), = s["finished"]
    assert interrupted is True and 0.5 < position < s["input_s"] - 5  # cut short, not played out
    assert s["finished_after_s"] < 1.0
    assert s["last_loud_after_clear_s"] < 0.5 and s["loud_s_after_clear"] < 0.4
    assert s["rms_last_1s"] < 100  # silence afterwards


# --- `python -m plugins.livekit_avatar`: the worker as a process of its own ------------------------------
def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run([str(PYTHON), "-m", "plugins.livekit_avatar", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**base, "PYTHONPATH": str(ROOT), **env})


def test_cli_rejects_bad_input_in_one_line(tmp_path: Path) -> None:
    _need_venv()
    face = str(ROOT / "examples/assets/grace_hopper.jpg")
    secret = "s3cret-value-never-printed-0123456789"
    creds = {"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": secret}
    bad_secrets = tmp_path / "secrets.env"
    bad_secrets.write_text("LIVEKIT_API_KEY k\n")
    cases = [
        (["--portrait", str(tmp_path / "none.jpg"), "--room", "r"], creds, "file not found"),
        (["--portrait", face, "--room", "r", "--size", "big"], creds, "--size must look like 480x270"),
        (["--portrait", face, "--room", "r", "--fps", "7"], creds, "divide by fps"),
        (["--portrait", face, "--room", "r"], {"LIVEKIT_URL": "ws://127.0.0.1:9"}, "no credentials"),
        (["--portrait", face, "--room", "r"], {}, "no server URL"),
        (["--portrait", face, "--room", "r", "--url", "ftp://x"], creds, "must start with ws://"),
        (["--portrait", face, "--room", "r", "--secrets-file", str(bad_secrets)], creds, "expected KEY=value"),
        (["--portrait", face, "--room", "r", "--token-ttl", "5"], creds, "--token-ttl"),
    ]
    for args, env, message in cases:
        proc = _run_cli(*args, **env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
        assert secret not in proc.stderr + proc.stdout


def test_cli_unreachable_server_fails_cleanly() -> None:
    _need_venv()
    proc = _run_cli("--portrait", str(ROOT / "examples/assets/grace_hopper.jpg"), "--room", "r",
                    LIVEKIT_URL="ws://127.0.0.1:9", LIVEKIT_API_KEY="k", LIVEKIT_API_SECRET="secret-0123456789")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "cannot join room 'r' at ws://127.0.0.1:9" in proc.stderr
    assert "secret-0123456789" not in proc.stderr


def test_cli_joins_with_a_minted_token_publishes_and_leaves_on_sigterm_with_its_agent_or_server() -> None:
    res = _scenario("cli", 150)
    for run in ("sigterm", "agent_leaves"):  # both end cleanly
        r = res[run]
        assert "claims" in r, r.get("stderr_tail")
        c = r["claims"]  # least privilege, marked as an avatar publishing on behalf of the agent
        assert c["kind"] == "agent" and c["attributes"] == {"lk.publish_on_behalf": "agent"}
        assert c["room"] == "avatar-room" and c["sources"] == ["camera", "microphone"]
        assert not c["room_admin"] and not c["room_create"]
        assert r["video_before_agent"] == 0  # it waits for its agent before publishing
        assert r["idle_video"]["n"] >= 25 and r["idle_video"]["sizes"] == [[320, 240]]
        assert r["exit"]["rc"] == 0 and r["exit"]["leave_sent"], r["stderr_tail"]  # a clean leave, by itself
        assert r["exit"]["after_s"] < 10
    assert "agent 'agent' left the room" in res["agent_leaves"]["stderr_tail"]
    # the server goes away for good: the SDK drops every participant while it retries (not taken for the
    # agent leaving), gives up, and the worker exits with 1 and says why
    lost = res["server_lost"]
    assert lost["idle_video"]["n"] >= 25 and lost["exit"]["rc"] == 1 and lost["exit"]["after_s"] < 45
    assert "lost the room: disconnected by the server" in lost["stderr_tail"]
    assert "left the room" not in lost["stderr_tail"]
    assert not res["secret_logged"]


def test_example_say_speaks_through_the_worker_cli() -> None:
    """examples/livekit_agents_avatar: `python -m plugins.livekit_avatar` + say.py, both as processes."""
    res = _scenario("example", 120, tail_key="avatar_stderr_tail")
    say = res["say"]
    assert say["rc"] == 0, say
    line = json.loads(say["stdout"].strip().splitlines()[-1])
    assert line["ok"] and not line["interrupted"] and abs(line["played_s"] - line["audio_s"]) < 0.3
    assert 1.5 < line["audio_s"] < 6 and line["playout_s"] < line["audio_s"] + 2
    assert res["heard_voiced_s"] > 1.5 and res["video_n"] >= 50  # the server decoded the avatar speaking
    assert res["avatar_rc"] == 0  # and the worker left with its agent


def test_example_say_rejects_bad_input(tmp_path: Path) -> None:
    _need_venv()
    say = str(ROOT / "examples/livekit_agents_avatar/say.py")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    creds = {"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 32}
    not_wav = tmp_path / "x.wav"
    not_wav.write_bytes(b"RIFF nope")
    for args, env, message in [
        (["--room", "r", "--text", "hi"], {}, "no server URL"),
        (["--room", "r", "--text", "hi"], {"LIVEKIT_URL": "ws://127.0.0.1:9"}, "LIVEKIT_API_KEY"),
        (["--room", "r", "--wav", str(tmp_path / "none.wav")], creds, "file not found"),
        (["--room", "r", "--wav", str(not_wav)], creds, "not a readable audio file"),
    ]:
        proc = subprocess.run([str(PYTHON), say, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**base, "PYTHONPATH": str(ROOT), **env})
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr[-1500:])


def test_the_avatar_hears_the_users_microphone_for_listening_nods() -> None:
    """The avatar follows the first human's microphone (the transport's MicListener) and stops when they leave."""
    res = _scenario("listen", 90)
    heard, left = res["heard"], res["left"]
    assert heard["listening"] == "user" and heard["first_after_s"] < 5
    assert 0.8 < heard["rate_s_per_s"] < 1.2  # the user's audio arrives in real time
    assert left["listening"] is None and left["after_s"] < 3 and left["heard_after_leave_s"] == 0.0
