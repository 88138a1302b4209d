"""A real browser in the room: headless Chromium on the LiveKit page talks to a whole agent session.

One run (tests/fixtures/livekit_browser_worker.py, inside a private network namespace) joins the page
(examples/livekit_participant/web, livekit-client 2.23.0 from npm) and the agent (the `livekit` SDK
sink) to the SFU-lite test server; Chromium's microphone is a WAV of a spoken question, a pause and an
interruption over the answer; then a chat message is typed. Every assertion reads what the page
itself recorded: captions, its WebAudio levels of the avatar's audio and of its own microphone,
requestVideoFrameCallback times and mouth-region pixels of the frames it showed, getStats.

Skips (with the reason) where user namespaces, Chromium/chromedriver, selenium or the page build
(`make web`) are missing. Numbers are measured on a shared 2-core machine: see bench/browser.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import rtc

from plugins.transport_livekit import LiveKitConfig
from plugins.transport_livekit.publish import default_bitrate, publish_options
from tests.fixtures import browser_analysis as A
from tests.fixtures.livekit_netns import run_scenario

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "examples/livekit_participant/web/vendor/livekit-client.umd.js"
LOUD = 0.01  # rms (0..1) from which the avatar's audio or the microphone counts as sound


# --- what the browser revealed in the transport (no network) -----------------------------------------
def test_publish_options_keep_fps_and_one_stream() -> None:
    video, audio = publish_options(LiveKitConfig(), 640, 360, 25)
    assert video.video_encoding.max_framerate == 25.0  # the SDK's h360 preset would cap it at 20
    assert video.video_encoding.max_bitrate == default_bitrate(640, 360, 25) > 400_000
    assert video.degradation_preference == rtc.DegradationPreference.MAINTAIN_FRAMERATE
    assert not video.simulcast  # off by default: its top layer arrived at 17-20 fps in Chromium
    assert video.stream == audio.stream == "avatar"  # one MediaStream: the browser lip-syncs them
    assert video.source == rtc.TrackSource.SOURCE_CAMERA and audio.source == rtc.TrackSource.SOURCE_MICROPHONE
    v2, _ = publish_options(LiveKitConfig(video_bitrate=300_000, simulcast=True, stream="s"), 854, 480, 30)
    assert (v2.video_encoding.max_bitrate, v2.video_encoding.max_framerate, v2.simulcast, v2.stream) == (
        300_000, 30.0, True, "s")


def test_a_backlog_does_not_delay_the_rest_of_the_session() -> None:
    """After a writer stall hands the sink three chunks at once, later sounds are not late for good:
    the sink skips queued silent chunks to catch up (the browser showed 0.45 s more audio latency)."""
    res = run_scenario("backlog", timeout=90, worker="livekit_latency_worker.py")
    assert "fatal" not in res, res["fatal"] + res["stderr_tail"]
    lat = res["latency_ms"]
    print("tone onset: write -> server", lat, "skipped", res["skipped"])
    assert None not in lat and len(lat) == 8, lat
    before, after = float(np.median(lat[:4])), float(np.median(lat[5:]))
    assert res["skipped"] >= 2, res
    assert after <= before + 80, (before, after, lat)  # without the skip: ~ +480 ms for good


def test_a_barge_in_drops_the_speech_queued_in_the_sink() -> None:
    """`drop_queued_media()` (what the media loop calls on a barge-in) drops the chunks queued in the sink,
    the rest of the one being sent and the SDK's audio queue: the tone stops reaching the server within
    ~0.1 s instead of after the ~0.45 s of queued speech, its frames stop with it, and video goes on."""
    res = run_scenario("flush", timeout=90, worker="livekit_latency_worker.py")
    assert "fatal" not in res, res["fatal"] + res["stderr_tail"]
    tails = res["tails"]
    print("after the cut: last tone / white frame at the server (ms)", tails)
    plain = [t for t in tails if not t["flushed"]]
    cut = [t for t in tails if t["flushed"]]
    assert res["flushed_chunks"] >= 2 and all(t["tone_ms"] is not None for t in tails), res
    assert min(t["tone_ms"] for t in plain) >= 300, plain  # the scenario does queue speech ahead
    # ~0.1 s measured (aiortc's 80 ms receive buffer included); 0.22 s once on a starved box
    assert max(t["tone_ms"] for t in cut) <= 250 and max(t["tone_ms"] for t in cut) + 150 <= min(
        t["tone_ms"] for t in plain), tails
    for t in cut:
        assert t["white_ms"] is not None and abs(t["white_ms"] - t["tone_ms"]) <= 120, t  # A/V dropped together
        assert t["frames_next_s"] >= 20, t  # the picture goes on after the flush


# --- the browser end to end ------------------------------------------------------------------------------
def needs_browser() -> None:
    """Skip, with the reason, where Chromium, selenium or the built page are missing."""
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Debian {tool} (tools/ensure_system.sh installs chromium chromium-driver)")
    pytest.importorskip("selenium")
    if not VENDOR.exists():
        pytest.skip("the page is not built: `make web` (npm ci + copy of livekit-client's UMD build)")


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    needs_browser()
    res = run_scenario("conversation", timeout=300, worker="livekit_browser_worker.py")
    assert "fatal" not in res, res["fatal"] + res["stderr_tail"]
    assert "error" not in res, res["error"] + res["stderr_tail"]
    assert res["joined"], res.get("page", {}).get("record")
    return res


def _page(res: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return res["page"]["record"], res["page"]["timeline"]


def _answers(res: dict[str, Any]) -> list[tuple[float, float]]:
    return A.loud_spans(_page(res)[1]["audio"], LOUD, min_gap_ms=900)


def test_agent_heard_the_spoken_question(run: dict[str, Any]) -> None:
    record, _ = _page(run)
    user = [c["text"] for c in record["captions"] if c["who"] == "you" and c["final"] and c["seg"] != "chat"]
    assert user, record["captions"]
    assert "order" in user[0].lower() and ("1234" in user[0] or "thirty" in user[0].lower()), user
    states = [s for _, s in record["states"]]
    assert {"listening", "thinking", "speaking"} <= set(states), states


def test_avatar_audio_plays_in_the_page(run: dict[str, Any]) -> None:
    _, tl = _page(run)
    answers = _answers(run)
    assert len([a for a in answers if a[0] < run["chat_sent_at"]]) >= 2, answers  # answer, answer to the interruption
    assert max(v for _, v in tl["audio"]) > 4 * LOUD
    assert tl["net"]["audioCodec"] == "opus"


def _relay_fps(run: dict[str, Any], spans: list[tuple[float, float]] | None = None) -> float:
    """Frames per second the relay received from the agent in `spans` (page ms; default: while the
    avatar spoke), from its arrival times on this run's shared monotonic clock: below 24.5 the
    machine was too starved for the agent to send 25 fps."""
    spans = _answers(run) if spans is None else spans
    page_now, mono = run["clock"]
    arrivals = [page_now + (t - mono) * 1000 for t in next(a for a in run["server"]["ava#0"]["arrivals"] if a)]
    return sum(sum(1 for t in arrivals if a <= t <= b) for a, b in spans) * 1000 / sum(b - a for a, b in spans)


def test_video_renders_at_24_fps(run: dict[str, Any]) -> None:
    _, tl = _page(run)
    answers = _answers(run)
    rates = [A.fps(tl["frames"], a, b) for a, b in answers]
    shown = sum(A.fps(tl["frames"], a, b) * (b - a) for a, b in answers) / sum(b - a for a, b in answers)
    whole = A.fps(tl["frames"], tl["frames"][0][0], tl["frames"][-1][0])
    print(f"fps while speaking {shown:.1f} (per answer {[round(r, 1) for r in rates]}), whole run {whole:.1f}, "
          f"{tl['net']}")
    # when the agent itself could not send 25 fps (a starved machine), the page is not what is measured
    sent = _relay_fps(run)
    print(f"the relay received {sent:.1f} fps from the agent in the same spans")
    if shown < 24.0 and sent < 24.5:
        pytest.skip(f"machine too loaded: the agent sent the relay only {sent:.1f} fps (the page showed {shown:.1f})")
    assert shown >= 24.0, rates
    w, h = (int(x) for x in tl["net"]["size"].split("x"))
    assert w == 480 and 266 <= h <= 270, tl["net"]["size"]  # libwebrtc's VP8 crops 270 to a multiple of 4


def test_mouth_moves_while_the_audio_is_loud(run: dict[str, Any]) -> None:
    _, tl = _page(run)
    m = A.mouth_motion(tl["frames"], _answers(run))
    print("mouth-region motion", m)
    assert m["n_speaking"] > 50 and m["n_idle"] > 50, m
    assert m["speaking"] > 3 * m["idle"], m


def test_av_offset_at_the_browser(run: dict[str, Any]) -> None:
    """Chromium's own A/V offset while the avatar speaks: the difference of the two tracks'
    `estimatedPlayoutTimestamp` (the sender time of what plays now), median of the once-a-second
    samples. BT.1359 detectability: at most 45 ms audio-late, 125 ms audio-early (audio late > 0).
    Also reported: the lag that lines the shown mouth region's brightness up with the heard audio
    envelope, minus the same lag in what the agent handed its sink (the animation's own timing).

    Chromium lines the two up itself (one media stream); what moved it outside the bounds in about
    half the runs was the relay's audio re-clocking (a 0-80 ms offset per run, gone: audio packets
    are forwarded as they arrive) and, on a starved machine, Chromium's audio jitter buffer swinging
    by hundreds of ms faster than its lip sync follows. So: judged when the agent could send 25 fps
    and the page's audio jitter buffer stayed under 150 ms; otherwise xfail with the numbers."""
    _, tl = _page(run)
    answers = _answers(run)
    page = A.av_offset_ms(tl["frames"], tl["audio"], answers)
    src = run["source"]
    source = A.av_offset_ms(src["frames"], src["audio"], A.loud_spans(src["audio"], LOUD, min_gap_ms=900))
    stats = [n["avOffsetMs"] for t, n in tl["netHistory"]
             if "avOffsetMs" in n and any(a <= t <= b for a, b in answers)]
    assert len(stats) >= 5, tl["netHistory"][-3:]
    median = float(np.median(stats))
    lag = None if page["offset_ms"] is None or source["offset_ms"] is None else page["offset_ms"] - source["offset_ms"]
    print(f"A/V offset: Chromium's playout median {median:.0f} ms {sorted(stats)}; picture-vs-sound {lag} ms "
          f"(page lag {page['offset_ms']} r={page['r']}, source lag {source['offset_ms']} r={source['r']})")
    jb = float(np.median([n["audioJitterBufferMs"] for t, n in tl["netHistory"] if n.get("audioJitterBufferMs")
                          and any(a <= t <= b for a, b in answers)]))
    sent = _relay_fps(run)
    print(f"  the page's audio jitter buffer median {jb:.0f} ms; the agent sent the relay {sent:.1f} fps")
    if (sent < 24.5 or jb > 150) and not (-125 <= median <= 45 and abs(page["r"]) > 0.15):
        pytest.xfail(f"a starved machine (the agent sent {sent:.1f} fps, the page's audio jitter buffer {jb:.0f} ms): "
                     f"Chromium's A/V offset median {median:.0f} ms, mouth/sound r={page['r']}, not judged on it")
    assert -125 <= median <= 45, stats
    assert abs(page["r"]) > 0.15, page  # the shown mouth follows the heard audio at all


def test_barge_in_stops_the_avatar_within_300ms(run: dict[str, Any]) -> None:
    """From the onset of the user's interruption (the page's own microphone record) to the avatar's
    audio going quiet as heard in the page, with where the time went: the voice reaching the relay
    and the agent, the agent's decision (VAD onset), its silence reaching the relay, then the page.

    On any machine: the avatar stops, and the agent decides within 150 ms of hearing the voice (the
    VAD's 120 ms run of voiced frames; both times are the agent's own). On a machine that is not
    starved: its silence reaches the relay within 100 ms of the decision (the sink drops its queue
    and the SDK's) and the page hears it within 300 ms of the onset. That end to end holds the two
    receivers' jitter buffers (the agent's NetEq for the voice, Chromium's for the avatar), which a
    starved CPU inflates (measured here at load 10-25: 100-1300 ms each, from ~20 ms and ~110-140 ms
    at the start of a run); then the run cannot judge the 300 ms and says so (xfail, numbers)."""
    _, tl = _page(run)
    parts = A.barge_in_parts(run, LOUD)
    onset = parts["onset"]
    sent = _relay_fps(run)
    jb_agent, jb_page = parts["agent_jitter_buffer"] or 0, parts["page_jitter_buffer"] or 0
    starved = sent < 24.5 or jb_agent > 40 or jb_page > 120
    speaking = onset is not None and any(v > LOUD for t, v in tl["audio"] if onset - 300 <= t <= onset)
    if not speaking and starved:  # the answer came 7 s late: there was nothing to interrupt
        pytest.xfail(f"a starved machine: the answer had not started when the user interrupted ({parts})")
    assert speaking, ("the avatar was not speaking", parts)
    print("barge-in, ms after the interruption's onset:", {k: v for k, v in parts.items() if k != "onset"},
          f"(the agent sent {sent:.1f} fps)")
    heard, decided, wire, stopped = (parts[k] for k in ("voice_at_agent", "decided", "quiet_at_relay", "quiet_in_page"))
    assert heard is not None and decided is not None and wire is not None and stopped is not None, parts
    assert decided - heard <= 150, parts
    if starved:
        if wire - decided <= 100 and stopped <= 300:
            return
        pytest.xfail(f"a starved machine (the agent sent the relay {sent:.1f} fps; jitter buffers {jb_agent} ms in "
                     f"the agent, {jb_page} ms in the page): silence at the relay {wire - decided:.0f} ms after "
                     f"the decision, {stopped:.0f} ms after the onset in the page; not judged on it")
    assert wire - decided <= 100, parts
    assert stopped <= 300, parts


def test_typed_chat_is_answered_with_speech_and_caption(run: dict[str, Any]) -> None:
    record, tl = _page(run)
    assert run["chat_answered"], record["captions"][-6:]
    sent = run["chat_sent_at"]
    caption = next(c for c in record["captions"] if c["who"] != "you" and c["t"] > sent and c["final"])
    assert "tomorrow" in caption["text"].lower()
    heard = A.first_loud_after(tl["audio"], sent, LOUD)
    assert heard is not None
    print(f"chat -> first avatar audio {heard - sent:.0f} ms")


# --- the page loses its signal connection ----------------------------------------------------------------
@pytest.fixture(scope="module")
def rejoined() -> dict[str, Any]:
    needs_browser()
    res = run_scenario("reconnect", timeout=240, worker="livekit_browser_worker.py")
    assert "fatal" not in res and "error" not in res, res.get("fatal") or res.get("error")
    return res


def test_page_reconnects_and_the_conversation_goes_on(rejoined: dict[str, Any]) -> None:
    """The relay drops the browser's signal connection (and refuses the resume, as a restarted server
    does): the page shows reconnecting, rejoins, gets the avatar's media again, and the agent hears the
    user's republished microphone (Chromium's fake capture restarts its WAV: the question again)."""
    record, tl = rejoined["page"]["record"], rejoined["page"]["timeline"]
    dropped = rejoined["dropped_at"]
    events = {kind: t for t, kind, _ in record["events"] if t > dropped}
    assert rejoined["reconnected"] and "reconnecting" in events and "reconnected" in events, record["events"]
    print(f"reconnected {events['reconnected'] - dropped:.0f} ms after the drop")
    after = (events["reconnected"] + 1000, tl["frames"][-1][0])
    shown, sent = A.fps(tl["frames"], *after), _relay_fps(rejoined, [after])
    print(f"after it: {shown:.1f} fps shown, {sent:.1f} fps received by the relay")
    if shown < 20 and sent < 24:
        pytest.xfail(f"a starved machine: the agent sent the relay {sent:.1f} fps after the rejoin (page {shown:.1f})")
    assert shown >= 20
    answers = [c for c in record["captions"] if c["who"] != "you" and c["final"] and c["t"] > events["reconnected"]]
    assert answers, record["captions"]
    assert A.first_loud_after(tl["audio"], events["reconnected"], LOUD) is not None


def test_chat_after_reconnect_is_answered(rejoined: dict[str, Any]) -> None:
    """A chat line typed right after the page shows it reconnected is answered. livekit-client 2.23.0
    announces a full reconnect ~2 s before its engine settles and keeps a reliable message sent in
    that window for a resume replay that never comes (it was lost 2 of 3 times): the page holds chat
    until the engine has settled."""
    record = rejoined["page"]["record"]
    back = next(t for t, kind, _ in record["events"] if kind == "reconnected" and t > rejoined["dropped_at"])
    print(f"chat typed {rejoined['chat_sent_at'] - back:.0f} ms after the page showed it reconnected")
    assert rejoined["chat_answered"], record["captions"][-6:]
