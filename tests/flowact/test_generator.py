"""PortraitGenerator (the CPU tier of flowact.api.Generator) on a real portrait: bad references are
PortraitErrors, chunks become frames with exact pts off the event loop, barge-in closes the mouth
within a few frames, a learned model without a checkpoint is a ModelError."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from flowact.api import Generator
from flowact.errors import ModelError, PortraitError
from flowact.generator import PortraitGenerator, PortraitGeneratorConfig
from flowact.types import EXPRESSIONS, N_MELS, VISEMES, AgentState, ControlChunk
from tests.fixtures.portraits import ASTRONAUT, GRACE

FPS = 25


def control(index: int, *, vis: str = "sil", state: AgentState = AgentState.IDLE, interrupt: bool = False,
            n: int = 5) -> ControlChunk:
    visemes = np.zeros((n, len(VISEMES)), np.float32)
    visemes[:, VISEMES.index(vis)] = 1.0
    audio = (np.arange(n * 16000 // FPS) % 100).astype(np.int16) + index
    return ControlChunk(
        index=index, pts=index * n / FPS, fps=FPS, n_frames=n, sample_rate=16000, audio=audio,
        mel=np.full((n, N_MELS), -6.0, np.float32), energy=np.full(n, 0.8 if vis != "sil" else 0.0, np.float32),
        visemes=visemes, expressions=np.zeros((n, len(EXPRESSIONS)), np.float32),
        head_pose=np.zeros((n, 3), np.float32), blink=np.zeros(n, np.float32), gaze=np.zeros((n, 2), np.float32),
        state=state, interrupt=interrupt,
    )


def _gen() -> PortraitGenerator:
    return PortraitGenerator(PortraitGeneratorConfig(cache_dir=None))


async def test_bad_references_are_portrait_errors(tmp_path: Path) -> None:
    gen = _gen()
    assert isinstance(gen, Generator)
    with pytest.raises(PortraitError, match="not found"):
        await gen.start(tmp_path / "missing.png")
    with pytest.raises(PortraitError, match="not a readable image"):
        await gen.start(b"GIF89a but not really")
    with pytest.raises(RuntimeError, match="start"):
        await gen.render_chunk(control(0))
    await gen.aclose()


def test_learned_motion_needs_a_checkpoint() -> None:
    with pytest.raises(ModelError, match="checkpoint"):
        PortraitGenerator(PortraitGeneratorConfig(motion="learned", cache_dir=None))


async def test_stream_frames_pts_audio_and_worker_thread() -> None:
    gen = _gen()
    await gen.start(GRACE)
    assert gen.renderer is not None
    threads: set[str] = set()
    real = gen.renderer.render

    def spy(row: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return real(row)

    gen.renderer.render = spy  # type: ignore[method-assign]
    chunks = [control(i, vis="aa" if i % 2 else "sil", state=AgentState.SPEAKING) for i in range(4)]

    async def source() -> AsyncIterator[ControlChunk]:
        for c in chunks:
            yield c

    out = [v async for v in gen.stream(source())]
    assert [v.index for v in out] == [0, 1, 2, 3]
    for c, v in zip(chunks, out, strict=True):
        assert len(v.frames) == c.n_frames and v.pts == c.pts and v.fps == FPS
        np.testing.assert_array_equal(v.audio, c.audio)
        for i, f in enumerate(v.frames):
            assert f.pts == pytest.approx(c.pts + i / FPS)
            assert f.index == c.index * c.n_frames + i
            assert f.image.shape == (480, 854, 3) and f.image.dtype == np.uint8
        assert v.render_ms > 0
    assert threads and all(t.startswith("flowact-render") for t in threads), threads
    await gen.aclose()


async def test_the_portrait_is_analysed_and_its_renderer_built_off_the_event_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a renderer takes 0.1-0.5 s: on the event loop it held every other task (another room's
    media on a dispatch worker) that long."""
    from flowact.reference import PortraitAnalysis
    from flowact.render.renderer import Renderer

    loop_thread = threading.current_thread().name
    built: list[str] = []

    def spy(analysis: PortraitAnalysis) -> Renderer:
        built.append(threading.current_thread().name)
        return Renderer(analysis)

    monkeypatch.setattr("flowact.generator.Renderer", spy)
    gen = _gen()
    await gen.start(GRACE)
    assert gen.renderer is not None and built and loop_thread not in built, (loop_thread, built)
    await gen.aclose()


async def test_barge_in_closes_the_mouth_within_a_few_frames() -> None:
    gen = _gen()
    await gen.start(GRACE)
    assert gen.analysis is not None
    x0, y0, x1, y1 = (int(v) for v in gen.analysis.mouth_box)
    ref = gen.analysis.image[y0:y1, x0:x1].astype(np.float32)

    def mouth_diff(img: np.ndarray) -> float:
        return float(np.abs(img[y0:y1, x0:x1].astype(np.float32) - ref).mean())

    for i in range(4):
        talking = await gen.render_chunk(control(i, vis="aa", state=AgentState.SPEAKING))
    open_diff = mouth_diff(talking.frames[-1].image)
    after = await gen.render_chunk(control(4, state=AgentState.LISTENING, interrupt=True, n=8))
    diffs = [mouth_diff(f.image) for f in after.frames]
    assert open_diff > 15, open_diff  # the mouth was clearly open
    assert diffs[-1] < 0.25 * open_diff, diffs  # closed again within 8 frames (320 ms)
    assert all(b <= a + 1.0 for a, b in zip(diffs, diffs[1:], strict=False)), diffs  # eased, no bounce
    await gen.aclose()


async def test_preloaded_face_model_then_start() -> None:
    """With preload_face_model the model loads on the worker at construction; start() queues behind it
    and still analyses the portrait correctly."""
    gen = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None, preload_face_model=True))
    await gen.start(GRACE)
    assert gen.analysis is not None and gen.analysis.faces_found == 1
    chunk = await gen.render_chunk(control(0))
    assert len(chunk.frames) == 5
    await gen.aclose()


async def test_start_again_on_the_same_file_keeps_the_started_portrait() -> None:
    """A dispatch worker starts the generator before its job does: the job's start on the same file is
    free; another file is analysed."""
    gen = _gen()
    await gen.start(GRACE)
    renderer, analysis = gen.renderer, gen.analysis
    await gen.start(GRACE)
    assert gen.renderer is renderer and gen.analysis is analysis
    await gen.start(ASTRONAUT)
    assert gen.renderer is not renderer and gen.analysis is not analysis
    assert len((await gen.render_chunk(control(0))).frames) == 5
    await gen.aclose()
