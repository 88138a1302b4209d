"""PortraitGenerator: the CPU tier of the generator contract (flowact.api.Generator).

ControlChunk -> motion model (procedural rules, or the learned diffusion-forcing model) -> renderer
-> VideoChunk. All per-frame work runs on one worker thread, strictly in order (motion continuity),
never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowact.api import ReferenceInput
from flowact.errors import ModelError, PortraitError
from flowact.framing import FramingMode
from flowact.motion.base import MotionModel
from flowact.reference import PortraitAnalysis, analyze_portrait
from flowact.render.renderer import Renderer
from flowact.types import ControlChunk, VideoChunk, VideoFrame

__all__ = ["PortraitGenerator", "PortraitGeneratorConfig"]


class PortraitGeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    motion: Literal["procedural", "learned"] = "procedural"
    checkpoint: str | None = Field(None, description="learned motion checkpoint (safetensors + config)")
    sampling_steps: int = Field(2, ge=1, le=8)
    cache_dir: str | None = Field("~/.cache/flowact/reference", description="portrait analysis cache")
    on_multiple_faces: Literal["largest", "refuse"] = Field(
        "refuse", description="several faces of comparable size: refuse (listing them) unless `face` picks one, "
        "or take the largest; a clearly dominant face is always taken",
    )
    face: int | tuple[float, float, float, float] | None = Field(
        None, description="which face to animate: an index (left to right, as the refusal lists them) or a box "
        "[x0, y0, x1, y1] in the photo's pixels",
    )
    isolate_face: bool = Field(
        False, description="a group photo: frame the chosen face's person alone (zoom up to 1.5x and move "
        "sideways to leave the other heads out of the frame, blur those still in view out of focus)",
    )
    framing: FramingMode = Field(
        "fill", description="fill: crop around the person where the photo allows, else a blurred, darkened "
        "extension of its background; crop: always cover the frame; fit: show the whole photo",
    )
    preload_face_model: bool = Field(
        False, description="load the face-landmark model in the background at construction (a server that "
        "will analyse new portraits: their first frame then takes ~0.1 s instead of ~1 s)",
    )
    seed: int = 0


class PortraitGenerator:
    """Animates one portrait from control chunks (see module docstring)."""

    Config = PortraitGeneratorConfig

    def __init__(
        self, config: PortraitGeneratorConfig | None = None, *, width: int = 854, height: int = 480, fps: int = 25
    ) -> None:
        self.config = config or PortraitGeneratorConfig()
        self.width, self.height, self.fps = width, height, fps
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowact-render")
        self.analysis: PortraitAnalysis | None = None
        self.renderer: Renderer | None = None
        self._started_with: str | Path | None = None
        self.motion: MotionModel = self._make_motion()
        if self.config.preload_face_model:
            from flowact.faces import warm_up

            self._pool.submit(warm_up)  # same in-order worker: start() simply queues behind it

    def _make_motion(self) -> MotionModel:
        if self.config.motion == "procedural":
            from flowact.motion.procedural import ProceduralMotion

            return ProceduralMotion(seed=self.config.seed)
        if not self.config.checkpoint:
            raise ModelError("generator.motion is 'learned' but generator.checkpoint is not set")
        try:
            from flowact.motion.learned import LearnedMotion
        except ImportError as e:
            raise ModelError(f"the learned motion model is not available: {e}") from e
        model: MotionModel = LearnedMotion.from_checkpoint(self.config.checkpoint, steps=self.config.sampling_steps)
        return model

    async def start(self, reference: ReferenceInput) -> None:
        """Analyse the portrait and build the renderer; a no-op when already started with this file
        (a dispatch worker starts its generators before a job arrives)."""
        if self.renderer is not None and isinstance(reference, str | Path) and reference == self._started_with:
            return
        loop = asyncio.get_running_loop()
        self.analysis = await loop.run_in_executor(self._pool, self._analyze, reference)
        # building the renderer takes 0.1-0.5 s: off the event loop (other sessions' media share it)
        self.renderer = await loop.run_in_executor(self._pool, Renderer, self.analysis)
        self._started_with = reference if isinstance(reference, str | Path) else None

    def _analyze(self, reference: ReferenceInput) -> PortraitAnalysis:
        if isinstance(reference, str | Path) and not Path(reference).expanduser().is_file():
            raise PortraitError(f"{reference}: portrait file not found")
        return analyze_portrait(
            reference, width=self.width, height=self.height,
            on_multiple_faces=self.config.on_multiple_faces, face=self.config.face, framing=self.config.framing,
            isolate=self.config.isolate_face, cache_dir=self.config.cache_dir,
        )

    def _render(self, control: ControlChunk) -> VideoChunk:
        if self.renderer is None:
            raise RuntimeError("PortraitGenerator.start() must be awaited before rendering")
        t = time.perf_counter()
        motion = self.motion.step(control)
        images = self.renderer.render_chunk(motion)
        ms = (time.perf_counter() - t) * 1000.0
        frames = tuple(
            VideoFrame(pts=control.pts + i / control.fps, image=img, index=control.index * control.n_frames + i)
            for i, img in enumerate(images)
        )
        return VideoChunk(
            index=control.index, pts=control.pts, fps=control.fps, frames=frames, audio=control.audio,
            sample_rate=control.sample_rate, state=control.state, render_ms=ms,
        )

    async def render_chunk(self, control: ControlChunk) -> VideoChunk:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._render, control)

    async def stream(self, controls: AsyncIterator[ControlChunk]) -> AsyncIterator[VideoChunk]:
        async for control in controls:
            yield await self.render_chunk(control)

    def interrupt(self) -> None:
        self.motion.interrupt()

    def reset(self) -> None:
        self.motion.reset()

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"PortraitGenerator({self.width}x{self.height}@{self.fps}, motion={self.config.motion})"

    def describe(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "fps": self.fps, "motion": self.config.motion}
