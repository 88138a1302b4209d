"""The rig (flowact.render.rig) is built in the face's own frame: a head photographed tilted moves as
the same head upright, turned by its tilt (a jaw drops along the face, a blink closes across the eye),
not along the screen's axes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flowact.motion.params import P
from flowact.reference import analyze_portrait, face_roll
from flowact.render.rig import build_rig
from tests.fixtures.portraits import GRACE


@pytest.mark.parametrize("degrees", [-9.0, 6.0])
def test_the_rig_turns_with_a_tilted_head(degrees: float) -> None:
    a = analyze_portrait(GRACE, cache_dir=None)
    upright = build_rig(a)
    t = np.radians(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pivot = np.array([400.0, 250.0])
    lm = a.landmarks.copy()
    lm[:, :2] = (a.landmarks[:, :2] - pivot) @ rot.T + pivot
    tilted = build_rig(dataclasses.replace(a, landmarks=lm))
    np.testing.assert_allclose(tilted.points, (upright.points - pivot) @ rot.T + pivot, atol=1e-3)
    # every motion's displacements turn with the head (the same motion in the face's own frame)
    np.testing.assert_allclose(tilted.basis, upright.basis @ rot.T, atol=0.02 * a.eye_distance)
    np.testing.assert_allclose(tilted.head_centre, (upright.head_centre - pivot) @ rot.T + pivot, atol=0.5)
    # e.g. the chin drops along the tilted face: its path leans by the head's whole tilt (the photo's
    # own, about 2 degrees, and the turn), not straight down the screen
    chin = tilted.basis[P["jaw_open"], tilted.index[152]]
    lean = float(np.degrees(np.arctan2(-chin[0], chin[1])))
    assert abs(lean - (degrees + face_roll(a.landmarks))) < 0.5, (lean, chin)
