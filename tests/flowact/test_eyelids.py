"""Closed eyelids (render/eyelids.py) take the skin just above the open lid, with its make-up, on real
portraits: a photo whose upper lids are painted a colour (eyeshadow) closes them in that colour, not in
the skin under the eye; lashes or a thin rim crossing that skin do not darken the lid."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from flowact.motion.params import MOTION_DIM, P
from flowact.reference import PortraitAnalysis, analyze_portrait
from flowact.render.eyelids import ABOVE_LID
from flowact.render.renderer import Renderer
from flowact.render.rig import L_UPPER_LID, R_UPPER_LID
from tests.fixtures.portraits import ALL_PORTRAITS

SHADOW = np.array([120.0, 80.0, 150.0], np.float32)  # a violet eyeshadow


def _lab(rgb: np.ndarray) -> np.ndarray:
    pixel = np.clip(rgb, 0, 255).astype(np.uint8).reshape(1, 1, 3)
    return np.asarray(cv2.cvtColor(pixel, cv2.COLOR_RGB2LAB)[0, 0], np.float32)


def _painted(a: PortraitAnalysis, line: bool) -> PortraitAnalysis:
    """The photo with the skin above each open upper lid painted SHADOW (blended into the skin's own
    texture); `line`: and a dark 2-px line across it, as lashes or a glasses rim."""
    img = a.image.astype(np.float32)
    s = a.eye_distance
    for lid in (L_UPPER_LID, R_UPPER_LID):
        pts = a.landmarks[list(lid), :2]
        x0, x1 = int(pts[:, 0].min()), int(pts[:, 0].max()) + 1
        top = int(pts[:, 1].min())
        y0, y1 = int(top - 1.1 * ABOVE_LID[1] * s), int(pts[:, 1].max() - 0.01 * s)
        patch = img[y0:y1, x0:x1]
        luma = patch.mean(axis=2, keepdims=True)
        img[y0:y1, x0:x1] = SHADOW * (luma / max(float(luma.mean()), 1.0))
        if line:
            ym = int(top - 0.5 * sum(ABOVE_LID) * s)
            img[ym : ym + 2, x0:x1] = 25.0
    return replace(a, image=np.clip(img, 0, 255).astype(np.uint8))


def _closed_lid(r: Renderer) -> list[np.ndarray]:
    """The mean colour inside each eye's opening with the eyes closed (blink 1)."""
    m = np.zeros(MOTION_DIM, np.float32)
    m[P["blink_l"]] = m[P["blink_r"]] = 1.0
    frame = r.render(m)
    out = []
    for lid in r._lids:
        poly = np.concatenate([r.rig.points[lid.upper], r.rig.points[lid.lower][::-1]]).astype(np.int32)
        filled = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(filled, [poly], 1)
        inside = cv2.erode(filled, np.ones((3, 3), np.uint8)) > 0
        out.append(frame[inside].astype(np.float32).mean(axis=0))
    return out


@pytest.mark.parametrize("name", ["franck", "obama_smile", "astronaut"])
def test_a_closed_lid_shows_the_eyeshadow_above_it(name: str) -> None:
    a = analyze_portrait(ALL_PORTRAITS[name], cache_dir=None)
    plain = _closed_lid(Renderer(a))
    shadowed = _closed_lid(Renderer(_painted(a, line=False)))
    lined = _closed_lid(Renderer(_painted(a, line=True)))
    for before, after, crossed in zip(plain, shadowed, lined, strict=True):
        to_shadow = float(np.linalg.norm(_lab(after) - _lab(SHADOW)))
        was = float(np.linalg.norm(_lab(before) - _lab(SHADOW)))
        # the lid took the eyeshadow's colour (CIE76 distance in Lab; the photo's own lid is far from it)
        assert to_shadow < 0.5 * was and to_shadow < 25.0, (to_shadow, was, after.round(), before.round())
        # a dark line across the band (a fifth of it) does not darken the lid
        assert crossed.mean() > 0.92 * after.mean(), (crossed.round(), after.round())
