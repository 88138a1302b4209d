"""ControlChunk on the wire: a versioned pydantic model, JSON round trip and JSON schema.

External producers (another process, another language) can drive the generator by sending these
JSON documents: arrays are nested lists (rows = frames), audio is base64 little-endian int16 mono.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowact.types import CONTROL_VERSION, EXPRESSIONS, N_MELS, VISEMES, AgentState, ControlChunk, ControlEvent

__all__ = ["ControlChunkWire", "control_from_json", "control_json_schema", "control_to_json"]


class EventWire(BaseModel):
    """A one-shot gesture/event at a frame of the chunk (names: the intent-tag gestures)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    frame: int = Field(ge=0)
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    intensity: float = Field(1.0, ge=0.0, le=1.0)


class ControlChunkWire(BaseModel):
    """One chunk of control signals (see flowact.types.ControlChunk for the meaning of each field)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, title="ControlChunk")

    version: int = Field(CONTROL_VERSION, description="format version; this library reads version 1")
    index: int = Field(ge=0)
    pts: float = Field(ge=0.0, description="seconds on the media timeline")
    fps: int = Field(gt=0, le=120)
    n_frames: int = Field(gt=0, le=256)
    sample_rate: int = Field(gt=0, le=192000)
    audio_b64: str = Field(
        max_length=4_000_000, description="base64 of little-endian int16 mono PCM, n_frames*sample_rate/fps samples"
    )
    mel: list[list[float]] = Field(description=f"(n_frames, {N_MELS}) natural-log mel power")
    energy: list[float] = Field(description="(n_frames,) RMS energy 0..1")
    visemes: list[list[float]] = Field(description=f"(n_frames, {len(VISEMES)}) weights for {', '.join(VISEMES)}")
    expressions: list[list[float]] = Field(
        description=f"(n_frames, {len(EXPRESSIONS)}) weights for {', '.join(EXPRESSIONS)}"
    )
    head_pose: list[list[float]] = Field(description="(n_frames, 3) yaw, pitch, roll in degrees")
    blink: list[float] = Field(description="(n_frames,) 0 open .. 1 closed")
    gaze: list[list[float]] = Field(description="(n_frames, 2) x, y in -1..1")
    state: AgentState = AgentState.IDLE
    events: list[EventWire] = Field(default_factory=list)
    interrupt: bool = False

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("version", CONTROL_VERSION) != CONTROL_VERSION:
            raise ValueError(f"version {data.get('version')!r} is not supported (this library reads {CONTROL_VERSION})")
        return data


def _arr(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=np.float32)
    except ValueError as e:  # ragged rows
        raise ValueError(f"invalid control chunk: {name} rows have different lengths") from e


def control_to_json(chunk: ControlChunk) -> str:
    wire = ControlChunkWire(
        version=chunk.version, index=chunk.index, pts=chunk.pts, fps=chunk.fps, n_frames=chunk.n_frames,
        sample_rate=chunk.sample_rate,
        audio_b64=base64.b64encode(chunk.audio.astype("<i2").tobytes()).decode("ascii"),
        mel=chunk.mel.tolist(), energy=chunk.energy.tolist(), visemes=chunk.visemes.tolist(),
        expressions=chunk.expressions.tolist(), head_pose=chunk.head_pose.tolist(), blink=chunk.blink.tolist(),
        gaze=chunk.gaze.tolist(), state=chunk.state,
        events=[EventWire(frame=e.frame, name=e.name, intensity=e.intensity) for e in chunk.events],
        interrupt=chunk.interrupt,
    )
    return wire.model_dump_json()


def control_from_json(text: str | bytes) -> ControlChunk:
    """Parse and validate; raises ValueError naming the problem."""
    try:
        wire = ControlChunkWire.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"invalid control chunk: {where}: {first['msg']}") from e
    try:
        audio = np.frombuffer(base64.b64decode(wire.audio_b64, validate=True), dtype="<i2").astype(np.int16)
    except ValueError as e:
        raise ValueError("invalid control chunk: audio_b64 is not valid base64") from e
    if audio.shape != (round(wire.n_frames * wire.sample_rate / wire.fps),):
        raise ValueError(
            f"invalid control chunk: audio has {len(audio)} samples, expected "
            f"n_frames*sample_rate/fps = {round(wire.n_frames * wire.sample_rate / wire.fps)}"
        )
    for ev in wire.events:
        if ev.frame >= wire.n_frames:
            raise ValueError(f"invalid control chunk: event {ev.name!r} at frame {ev.frame} >= n_frames")
    arrays = {k: _arr(getattr(wire, k), k) for k in ("mel", "energy", "visemes", "expressions", "head_pose",
                                                        "blink", "gaze")}
    try:
        return ControlChunk(
            index=wire.index, pts=wire.pts, fps=wire.fps, n_frames=wire.n_frames, sample_rate=wire.sample_rate,
            audio=audio, mel=arrays["mel"], energy=arrays["energy"], visemes=arrays["visemes"],
            expressions=arrays["expressions"], head_pose=arrays["head_pose"], blink=arrays["blink"],
            gaze=arrays["gaze"], state=wire.state,
            events=tuple(ControlEvent(e.frame, e.name, e.intensity) for e in wire.events),
            interrupt=wire.interrupt,
        )
    except ValueError as e:  # shape mismatches, reported by ControlChunk itself
        raise ValueError(f"invalid control chunk: {e}") from e


def control_json_schema() -> dict[str, Any]:
    schema = ControlChunkWire.model_json_schema()
    schema["$id"] = f"https://flowact-agent/schemas/control-v{CONTROL_VERSION}.json"
    json.dumps(schema)  # always serialisable
    return schema
