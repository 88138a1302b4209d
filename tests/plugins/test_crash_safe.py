"""Crash-safe recordings: `say` killed with SIGKILL leaves a `.partial` that decodes up to within about
a second of the kill; the next run with the same path recovers it and writes its own file cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from agent.errors import TransportError
from plugins.sink_file import FileSink, FileSinkConfig
from plugins.sink_file.fragments import trim_to_complete_boxes
from tests.agent.test_cli import espeak_config
from tests.plugins.test_sink_file import chunk

ROOT = Path(__file__).resolve().parents[2]
LONG_TEXT = " ".join(
    ["Thank you for calling. Your order left the depot on Monday and it should arrive tomorrow morning."] * 6
)


def decoded_seconds(path: Path) -> tuple[float, float]:
    """(video, audio) seconds a strict decode of `path` yields; any decoding error fails the test."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        n_video = sum(1 for _ in c.decode(stream))
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        n_audio = sum(f.samples for f in c.decode(stream))
        rate = stream.rate
    return n_video / fps, n_audio / rate


@pytest.mark.timeout(400)
def test_say_killed_with_sigkill_leaves_a_playable_partial_and_a_restart_recovers_it(tmp_path: Path) -> None:
    out, cfg = tmp_path / "say.mp4", espeak_config(tmp_path)
    small = {**os.environ, "FLOWACT__SESSION__WIDTH": "320", "FLOWACT__SESSION__HEIGHT": "240"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "-v", "say", "--text", LONG_TEXT, "-o", str(out), "-c", str(cfg)],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=small,
    )
    sent = threading.Event()
    seconds: list[int] = []
    tail: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail[:] = [*tail[-20:], line]
            m = re.search(r"say\.mp4\.partial: (\d+) s of video sent to the encoder", line)
            if m and int(m.group(1)) >= 5 and not sent.is_set():
                proc.send_signal(signal.SIGKILL)  # at once: the sink has sent exactly N s
                seconds.append(int(m.group(1)))
                sent.set()

    reader = threading.Thread(target=watch, name="stderr-reader", daemon=True)
    reader.start()
    try:
        assert sent.wait(300), "never reached 5 s of video:\n" + "".join(tail)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    killed_at = seconds[0]
    partial = tmp_path / "say.mp4.partial"
    assert partial.exists() and not out.exists()
    video_s, audio_s = decoded_seconds(partial)
    print(f"killed at {killed_at} s sent; decoded video {video_s:.2f} s, audio {audio_s:.2f} s")
    # everything up to within a second of the kill decodes (fragments of 0.25 s + x264 lookahead)
    # (the upper bound only allows for the render running on while the kill is delivered)
    assert killed_at - 1.0 <= video_s <= killed_at + 3.0, (video_s, killed_at)
    assert killed_at - 1.0 <= audio_s <= killed_at + 3.0, (audio_s, killed_at)

    # a restart with the same output path keeps the killed run's recording and writes its own
    r = subprocess.run(
        [sys.executable, "-m", "agent", "say", "--text", "Back again.", "-o", str(out), "-c", str(cfg)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=small,
    )
    assert r.returncode == 0, r.stderr
    assert "recovered the recording of a killed run" in r.stderr
    assert not partial.exists() and not (tmp_path / "say.mp4.finishing").exists()
    recovered = tmp_path / "say.recovered.mp4"
    assert decoded_seconds(recovered)[0] == pytest.approx(video_s, abs=0.05)
    new_video_s, new_audio_s = decoded_seconds(out)
    assert 0.5 < new_video_s < 5 and abs(new_video_s - new_audio_s) < 0.2


async def _fragmented_partial(tmp_path: Path, n_chunks: int = 30) -> tuple[FileSink, Path]:
    sink = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4"), fragment_s=0.2))
    await sink.start(width=64, height=48, fps=25, sample_rate=24000)
    for i in range(n_chunks):
        await sink.write(chunk(i))
    return sink, sink.partial


async def test_a_partial_truncated_anywhere_is_trimmed_to_a_decodable_file(tmp_path: Path) -> None:
    """A kill can only cut the file between write() calls, but the recovery must cope with any cut."""
    sink, partial = await _fragmented_partial(tmp_path)
    data = partial.read_bytes()  # what a kill at this moment leaves on disk
    await sink.aclose()
    complete = 0.0
    for cut in range(200, len(data), max(1, len(data) // 60)):
        p = tmp_path / f"cut{cut}.mp4"
        p.write_bytes(data[:cut])
        if trim_to_complete_boxes(p) == 0:
            continue  # header only: nothing to recover
        video_s, audio_s = decoded_seconds(p)
        assert video_s > 0 and audio_s > 0
        assert video_s >= complete - 0.01  # a longer prefix never recovers less
        complete = video_s
    full = tmp_path / "full.mp4"
    full.write_bytes(data)
    trim_to_complete_boxes(full)
    assert decoded_seconds(full)[0] >= 30 * 4 / 25 - 1.0  # all but the encoder's lookahead


async def test_a_second_session_on_the_same_path_is_refused_while_the_first_writes(tmp_path: Path) -> None:
    first, partial = await _fragmented_partial(tmp_path, n_chunks=5)
    second = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4")))
    with pytest.raises(TransportError, match="another running session"):
        await second.start(width=64, height=48, fps=25, sample_rate=24000)
    assert partial.stat().st_size > 0  # the live recording was not touched
    await first.aclose()
    assert decoded_seconds(tmp_path / "o.mp4")[0] == pytest.approx(20 / 25)
    # the path is free again
    third = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4")))
    await third.start(width=64, height=48, fps=25, sample_rate=24000)
    await third.write(chunk(0))
    await third.aclose()
    assert decoded_seconds(tmp_path / "o.mp4")[0] == pytest.approx(4 / 25)


async def test_a_stale_partial_is_recovered_under_a_new_name_each_time(tmp_path: Path) -> None:
    sink, partial = await _fragmented_partial(tmp_path, n_chunks=20)
    stale = partial.read_bytes()
    await sink.aclose()
    for n, name in enumerate(["o.recovered.mp4", "o.recovered-2.mp4"]):
        partial.write_bytes(stale[: len(stale) - 100 * n])  # the second one was cut mid-fragment
        (tmp_path / "o.mp4.finishing").write_bytes(b"half a remux")
        s = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4")))
        await s.start(width=64, height=48, fps=25, sample_rate=24000)
        await s.write(chunk(0))
        await s.aclose()
        assert decoded_seconds(tmp_path / name)[0] > 1.5
        assert not (tmp_path / "o.mp4.finishing").exists() and not partial.exists()
    # a partial with no complete fragment (killed before the first flush) is just removed
    partial.write_bytes(stale[:300])
    s = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4")))
    await s.start(width=64, height=48, fps=25, sample_rate=24000)
    await s.aclose()
    assert sorted(name for name in os.listdir(tmp_path) if "recovered" in name) == [
        "o.recovered-2.mp4", "o.recovered.mp4"
    ]
