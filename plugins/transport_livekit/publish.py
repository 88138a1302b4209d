"""How the sink's tracks are published: what a browser needs to play the avatar smoothly and in sync.

Found with a real browser (tests/plugins/test_livekit_browser.py):
- the SDK's default encoding for a 640x360 track is LiveKit's h360 preset, capped at 20 fps (as
  every preset below 540p is): the avatar's 25 fps arrived as 20. The frame rate is set to the
  session's fps, with a bitrate for that size and rate unless one is configured, and the encoder
  keeps the frame rate under CPU pressure (lowers resolution instead). With simulcast on, the top
  layer still arrived at 17-20 fps (the SDK's layer presets): simulcast is off by default;
- audio and video are published under one `stream` name: a LiveKit server puts the tracks of one
  stream in one MediaStream at the subscriber, and browsers lip-sync only the tracks of one
  MediaStream (each track otherwise plays as soon as it can: the audio came ~0.3 s late).
"""

from __future__ import annotations

from livekit import rtc

from plugins.transport_livekit.config import LiveKitConfig

__all__ = ["default_bitrate", "publish_options"]


def default_bitrate(width: int, height: int, fps: int) -> int:
    """A max video bitrate for a size and rate (~0.1 bit per pixel per frame; near LiveKit's presets)."""
    return int(min(3_000_000, max(150_000, 0.1 * width * height * fps)))


def publish_options(cfg: LiveKitConfig, width: int, height: int,
                    fps: int) -> tuple[rtc.TrackPublishOptions, rtc.TrackPublishOptions]:
    """(video, audio) publish options for the avatar's tracks."""
    video = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=cfg.simulcast,
                                    stream=cfg.stream)
    video.video_encoding.max_bitrate = cfg.video_bitrate or default_bitrate(width, height, fps)
    video.video_encoding.max_framerate = float(fps)
    # the SDK's public IntEnum mirrors the proto enum (typed as its ValueType)
    video.degradation_preference = rtc.DegradationPreference.MAINTAIN_FRAMERATE  # type: ignore[assignment]
    audio = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, stream=cfg.stream)
    return video, audio
