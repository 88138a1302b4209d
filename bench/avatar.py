"""livekit-agents avatar worker (plugins/livekit_avatar): render cost per frame and memory over time.

Needs livekit-agents (installed by `make setup` beside livekit 1.2.1). Unpaced: the
generator renders as fast as it is consumed, so the numbers are its headroom over real time (40 ms a
frame at 25 fps). Speech is espeak-ng audio (the engine plugin) pushed the way DataStreamAudioReceiver would push it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _need_agents() -> None:
    try:
        import livekit.agents  # noqa: F401
    except ImportError:
        print("skipped: livekit-agents is not installed (`make setup` installs it)")
        sys.exit(0)


async def _espeak(text: str, rate: int = 22050) -> tuple[bytes, int]:
    from plugins.tts_espeak import EspeakTTS

    tts = EspeakTTS(sample_rate=rate)
    return b"".join([c.audio.samples.tobytes() async for c in tts.synthesize(text)]), rate


async def _run(width: int, height: int, pcm: bytes, rate: int) -> None:
    import numpy as np
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    from plugins.livekit_avatar import FlowactAvatarConfig, FlowactVideoGenerator

    cfg = FlowactAvatarConfig(portrait=ROOT / "examples/assets/grace_hopper.jpg", width=width, height=height)
    gen = FlowactVideoGenerator(cfg)
    await gen.start()
    try:
        async def frames(n: int) -> float:
            t, got = time.perf_counter(), 0
            async for x in gen:
                if isinstance(x, AudioSegmentEnd):
                    break
                got += isinstance(x, rtc.VideoFrame)
                if got >= n:
                    break
            return (time.perf_counter() - t) / max(got, 1) * 1000

        await frames(25)  # warm-up
        idle_ms = await frames(100)
        samples = np.frombuffer(pcm, np.int16)
        for i in range(0, len(samples), rate // 50):
            part = samples[i : i + rate // 50]
            await gen.push_audio(rtc.AudioFrame(part.tobytes(), rate, 1, len(part)))
        await gen.push_audio(AudioSegmentEnd())
        speech_ms = await frames(10**9)
        print(f"  {width}x{height}: idle {idle_ms:5.1f} ms/frame, speech {speech_ms:5.1f} ms/frame "
              f"(x{40 / max(idle_ms, speech_ms):.1f} faster than real time)")
        if width == 480:
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            await frames(3000)  # two minutes of video
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"  memory: peak RSS {rss0 / 1024:.0f} MB -> {rss1 / 1024:.0f} MB over 3000 more idle frames "
                  f"(+{(rss1 - rss0) / 1024:.1f} MB)")
    finally:
        await gen.aclose()


if __name__ == "__main__":
    _need_agents()
    pcm, rate = asyncio.run(_espeak("Thanks for waiting. Your order ships today, and it should arrive by Friday."))
    load = os.getloadavg()
    print(f"load average (other processes skew timings): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"FlowactVideoGenerator, unpaced, one process ({len(pcm) // 2 / rate:.1f} s of espeak speech at {rate} Hz):")
    for w, h in ((480, 270), (854, 480)):
        asyncio.run(_run(w, h, pcm, rate))
