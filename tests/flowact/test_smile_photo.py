"""An open-smile photo's smile is an expression the agent controls (renderer `_effective`, rest_mouth
`smiles`): at rest the lips are closed; the agent's smile brings the photo's own smile back (the rest
closing partly undone, the teeth it showed), instead of stretching the closed lips into another
smile. A speaking or laughing photo's open mouth is not a smile and stays closed when the agent
smiles. Measured on real photos, the likeness by dlib's face descriptor (an independent model)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from flowact.faces import detect_faces
from flowact.motion.params import MOTION_DIM, P
from flowact.reference import analyze_portrait
from flowact.render.renderer import Renderer
from flowact.render.rest_mouth import smiles
from tests.fixtures.portraits import ALL_PORTRAITS

SMILING = ("obama_smile", "astronaut")
NOT_SMILING = ("obama_speaking", "franck_laugh", "einstein_turned")


@cache
def _renderer(name: str) -> Renderer:
    return Renderer(analyze_portrait(ALL_PORTRAITS[name], cache_dir=None))


def _smile(amount: float) -> np.ndarray:
    m = np.zeros(MOTION_DIM, np.float32)
    m[P["smile"]], m[P["cheek_raise"]] = amount, 0.75 * amount  # as the "happy" expression drives them
    return m


def _gap(frame: np.ndarray, s: float) -> float:
    lm = detect_faces(frame, max_faces=1)[0]
    return float(lm[14, 1] - lm[13, 1]) / s


@pytest.mark.parametrize("name", SMILING + NOT_SMILING)
def test_which_open_mouths_are_smiles(name: str) -> None:
    r = _renderer(name)
    assert r._unwind is not None  # all of these photos are open and closed at rest
    assert smiles(r.reference) == (name in SMILING)


@pytest.mark.parametrize("name", SMILING)
def test_the_agents_smile_is_the_photos_own(name: str) -> None:
    r = _renderer(name)
    s = r.reference.eye_distance
    photo, rest, smiling = _gap(r.reference.image, s), _gap(r.render(_smile(0.0)), s), _gap(r.render(_smile(0.8)), s)
    assert rest < 0.06 < photo, (rest, photo)  # closed at rest
    assert smiling > rest + 0.3 * (photo - rest), (rest, smiling, photo)  # the smile parts the lips towards the photo's
    assert smiling < photo  # but not all the way: the agent's 0.8, not the photo's full laugh


@pytest.mark.parametrize("name", NOT_SMILING)
def test_a_speaking_photo_does_not_open_to_smile(name: str) -> None:
    r = _renderer(name)
    assert r._effective(_smile(0.8))[1] == 1.0  # the rest closing stays whole

    def centre_gap(m: np.ndarray) -> float:
        up, lo = r.mouth_gap(m)
        cx = float(up[:, 0].mean())
        return float(np.interp(cx, lo[:, 0], lo[:, 1]) - np.interp(cx, up[:, 0], up[:, 1])) / r.rig.scale

    assert centre_gap(_smile(0.8)) < centre_gap(_smile(0.0)) + 0.03


@pytest.mark.parametrize("name", SMILING)
def test_the_photos_own_smile_keeps_the_likeness(name: str) -> None:
    """dlib's descriptor distance to the photo at the agent's smile 0.8: the photo's own smile against
    the closed lips stretched into one (the renderer without this rule), measured 0.28-0.29 against
    0.40 on these two."""
    pytest.importorskip("dlib")
    from bench.fidelity import Scorer

    sc = Scorer()
    r = _renderer(name)

    def distance(frame: np.ndarray) -> float:
        assert sc.find(frame)
        return float(np.linalg.norm(sc.identity(frame) - ref_id))

    assert sc.find(r.reference.image)
    ref_id = sc.identity(r.reference.image)
    own = distance(r.render(_smile(0.8)))
    r._smile_photo = False
    try:
        stretched = distance(r.render(_smile(0.8)))
    finally:
        r._smile_photo = True
    assert own < stretched - 0.05, (own, stretched)
