"""The generator config carries the portrait choices through to the analysis: `face` (index or box,
as YAML gives them) and `framing`; a group without a choice is refused with the list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowact.errors import PortraitError
from flowact.generator import PortraitGenerator, PortraitGeneratorConfig
from tests.fixtures.portraits import group


@pytest.fixture(scope="module")
def group_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("group") / "two.png"
    Image.fromarray(group(2)).save(p)
    return p


async def test_group_refused_then_chosen(group_file: Path) -> None:
    gen = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None))
    with pytest.raises(PortraitError, match="2 faces found, 2 of comparable size"):
        await gen.start(group_file)
    await gen.aclose()
    chosen = {}
    for face in (0, 1, [410.0, 0.0, 813.0, 512.0]):  # a YAML list becomes the box
        cfg = PortraitGeneratorConfig.model_validate({"cache_dir": None, "face": face})
        g = PortraitGenerator(cfg)
        await g.start(group_file)
        assert g.analysis is not None and g.analysis.faces_found == 2
        chosen[str(face)] = g.analysis.image
        await g.aclose()
    assert not np.array_equal(chosen["0"], chosen["1"])
    np.testing.assert_array_equal(chosen["1"], chosen[str([410.0, 0.0, 813.0, 512.0])])


async def test_framing_passes_through(group_file: Path) -> None:
    frames = {}
    for mode in ("fill", "crop", "fit"):
        g = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None, face=1, framing=mode))  # type: ignore[arg-type]
        await g.start(group_file)
        assert g.analysis is not None
        frames[mode] = g.analysis.image
        await g.aclose()
    assert not np.array_equal(frames["fill"], frames["fit"]) and not np.array_equal(frames["crop"], frames["fit"])


async def test_isolate_face_passes_through(tmp_path: Path) -> None:
    """`isolate_face` reaches the analysis: the chosen person of a close group is framed alone."""
    p = tmp_path / "close.png"
    Image.fromarray(group(2, keep=0.5)).save(p)
    images = {}
    for iso in (False, True):
        g = PortraitGenerator(PortraitGeneratorConfig(cache_dir=None, face=0, isolate_face=iso))
        await g.start(p)
        assert g.analysis is not None
        images[iso] = g.analysis.image
        await g.aclose()
    assert not np.array_equal(images[False], images[True])
