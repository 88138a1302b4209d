"""ControlChunk on the wire: JSON round trip, JSON schema, and clear errors for bad documents."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from flowact.control import ControlBuilder
from flowact.types import (
    CONTROL_VERSION,
    EXPRESSIONS,
    N_MELS,
    VISEMES,
    AgentState,
    AudioChunk,
    ControlChunk,
    IntentTag,
    SpeechChunk,
)
from flowact.wire import control_from_json, control_json_schema, control_to_json


def builder_chunks() -> list[ControlChunk]:
    b = ControlBuilder(sample_rate=16000)
    rng = np.random.default_rng(0)
    b.set_state(AgentState.THINKING)
    out = [b.next_chunk() for _ in range(3)]
    b.push_speech(SpeechChunk(AudioChunk((rng.normal(0, 3000, 16000)).astype(np.int16), 16000), "hi there",
                              tags=(IntentTag("happy"), IntentTag("nod", char_offset=3))))
    out += [b.next_chunk() for _ in range(8)]
    b.interrupt()
    out += [b.next_chunk() for _ in range(2)]
    return out


def assert_same(a: ControlChunk, b: ControlChunk) -> None:
    assert (a.index, a.pts, a.fps, a.n_frames, a.sample_rate, a.state, a.events, a.interrupt, a.version) == (
        b.index, b.pts, b.fps, b.n_frames, b.sample_rate, b.state, b.events, b.interrupt, b.version)
    assert np.array_equal(a.audio, b.audio) and a.audio.dtype == b.audio.dtype == np.int16
    for k in ("mel", "energy", "visemes", "expressions", "head_pose", "blink", "gaze"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype == np.float32 and np.array_equal(x, y), k


def test_round_trip_of_builder_chunks() -> None:
    chunks = builder_chunks()
    assert any(c.events for c in chunks) and any(c.interrupt for c in chunks)
    for c in chunks:
        text = control_to_json(c)
        doc = json.loads(text)
        assert doc["version"] == CONTROL_VERSION and len(doc["visemes"][0]) == len(VISEMES)
        assert_same(control_from_json(text), c)
        assert_same(control_from_json(text.encode()), c)


def test_schema_describes_the_format() -> None:
    schema = control_json_schema()
    json.dumps(schema)
    props = schema["properties"]
    for key in ("version", "index", "pts", "fps", "n_frames", "sample_rate", "audio_b64", "mel", "energy",
                "visemes", "expressions", "head_pose", "blink", "gaze", "state", "events", "interrupt"):
        assert key in props, key
    assert str(CONTROL_VERSION) in schema["$id"]
    text = json.dumps(schema)
    assert all(v in text for v in VISEMES) and all(e in text for e in EXPRESSIONS) and str(N_MELS) in text
    assert set(schema["$defs"]["AgentState"]["enum"]) == {s.value for s in AgentState}
    assert set(schema["required"]) >= {"index", "audio_b64", "mel", "visemes"}


def doc() -> dict[str, Any]:
    out: dict[str, Any] = json.loads(control_to_json(builder_chunks()[5]))
    return out


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version 2 is not supported"),
        (lambda d: d.update(extra_field=1), "extra_field"),
        (lambda d: d.pop("mel"), "mel"),
        (lambda d: d.update(audio_b64="!!notbase64!!"), "base64"),
        (lambda d: d.update(audio_b64=base64.b64encode(b"\0\0" * 10).decode()), "audio has 10 samples"),
        (lambda d: d["visemes"].pop(), "visemes has shape"),
        (lambda d: d["mel"][0].pop(), "rows have different lengths"),
        (lambda d: d.update(state="dancing"), "state"),
        (lambda d: d.update(fps=0), "fps"),
        (lambda d: d.update(events=[{"frame": 9, "name": "nod"}]), "frame 9"),
        (lambda d: d.update(events=[{"frame": 0, "name": "rm -rf"}]), "events.0.name"),
        (lambda d: d.update(events=[{"frame": 0, "name": "nod", "intensity": 2}]), "intensity"),
        (lambda d: d["energy"].__setitem__(0, "loud"), "energy.0"),
    ],
)
def test_invalid_documents_give_clear_errors(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    d = doc()
    mutate(d)
    with pytest.raises(ValueError, match="invalid control chunk") as info:
        control_from_json(json.dumps(d))
    assert message in str(info.value)


def test_non_json_and_non_finite() -> None:
    with pytest.raises(ValueError, match="invalid control chunk"):
        control_from_json("not json")
    d = doc()
    text = json.dumps(d).replace(json.dumps(d["energy"]), "[NaN, 0, 0, 0]", 1)
    with pytest.raises(ValueError, match="energy"):
        control_from_json(text)
