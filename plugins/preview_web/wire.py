"""Binary websocket messages between the preview page and the sink (little-endian).

Every binary message starts with a 16-byte header: u8 type, 3 reserved bytes, u32 `arg`, f64 pts
(seconds on the session's media timeline), then the payload:

- type 1 VIDEO (server -> page): arg = frame index, payload = JPEG.
- type 2 AUDIO (server -> page): arg = sample rate, payload = mono int16 PCM.
- type 3 MIC   (page -> server): arg = sample rate, payload = mono int16 PCM (pts: page clock).

JSON text messages carry the rest: server -> page `hello`, `state`, `transcript`, `metrics`, `notice`,
`flush` (a barge-in: drop the audio and frames scheduled but not yet played); page -> server
`{"type": "text", "text": "..."}`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from flowact.errors import InputError
from flowact.types import Int16Array

__all__ = ["AUDIO", "HEADER", "MIC", "VIDEO", "MicBlock", "pack", "parse_mic"]

HEADER = struct.Struct("<B3xId")
VIDEO, AUDIO, MIC = 1, 2, 3
MAX_MIC_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class MicBlock:
    samples: Int16Array
    sample_rate: int
    pts: float


def pack(kind: int, arg: int, pts: float, payload: bytes) -> bytes:
    return HEADER.pack(kind, arg, pts) + payload


def parse_mic(data: bytes) -> MicBlock:
    """Validate one microphone message; raises InputError with the reason."""
    if len(data) < HEADER.size:
        raise InputError(f"binary message of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
    kind, rate, pts = HEADER.unpack_from(data)
    if kind != MIC:
        raise InputError(f"unexpected binary message type {kind} (the page may only send MIC={MIC})")
    body = data[HEADER.size :]
    if len(body) > MAX_MIC_BYTES or len(body) % 2:
        raise InputError(f"mic payload of {len(body)} bytes (must be even and <= {MAX_MIC_BYTES})")
    if not 8000 <= rate <= 96000:
        raise InputError(f"mic sample rate {rate} outside 8000..96000")
    return MicBlock(np.frombuffer(body, dtype="<i2").astype(np.int16), int(rate), float(pts))
