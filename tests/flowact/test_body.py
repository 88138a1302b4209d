"""Upper body (flowact.render.body): the shoulders rise with a shrug, a breath and a head tilt, the
head and the background do not move with them, and the lift is smooth and never folds. Measured on
the rendered pixels of real portraits."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from flowact.motion.params import MOTION_DIM, P
from flowact.reference import analyze_portrait
from flowact.render.body import BREATH_LIFT, SHRUG_LIFT
from flowact.render.renderer import Renderer
from tests.fixtures.portraits import ALL_PORTRAITS

NAMES = ["grace", "astronaut", "obama_smile", "franck"]


@cache
def _renderer(name: str) -> Renderer:
    return Renderer(analyze_portrait(ALL_PORTRAITS[name], cache_dir=None))


def motion(**kw: float) -> np.ndarray:
    m = np.zeros(MOTION_DIM, np.float32)
    for k, v in kw.items():
        m[P[k]] = v
    return m


def _shoulder_patch(r: Renderer, side: int) -> tuple[int, int, int, int]:
    """A patch across the shoulder's top edge on one side (-1 left, +1 right of the image)."""
    lm, s = r.analysis.landmarks, r.rig.scale
    body = r._body
    assert body is not None, "no torso found"
    x = int(lm[152, 0] + side * 2.0 * s)
    x = int(np.clip(x, body.x0 + 0.4 * s, body.x1 - 0.4 * s))
    col = body.rgba[:, x - body.x0, 3] > 127  # the person's mask
    top = body.y0 + int(np.argmax(col))
    return x - int(0.25 * s), top - int(0.6 * s), x + int(0.25 * s), top + int(0.4 * s)


def _edge_rise(a: np.ndarray, b: np.ndarray) -> float:
    """How far up the shoulder's top edge (the strongest vertical brightness step in each column of
    the patch) sits in `b` compared with `a`: the median over the columns, in pixels."""

    def edge(img: np.ndarray) -> np.ndarray:
        g = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0)
        grad = np.abs(np.diff(g, axis=0))
        rows = np.arange(grad.shape[0], dtype=np.float32)[:, None]
        peak = grad.argmax(axis=0)
        # sub-pixel: the gradient-weighted mean row around the peak
        w = grad * (np.abs(rows - peak[None, :]) <= 2)
        out: np.ndarray = (w * rows).sum(axis=0) / np.maximum(w.sum(axis=0), 1e-6)
        return out

    return float(np.median(edge(a) - edge(b)))


@pytest.mark.parametrize("name", NAMES)
def test_shrug_and_breath_lift_the_shoulders(name: str) -> None:
    r = _renderer(name)
    s = r.rig.scale
    rest = r.render(motion())
    for side in (-1, 1):
        x0, y0, x1, y1 = _shoulder_patch(r, side)
        shrug = _edge_rise(rest[y0:y1, x0:x1], r.render(motion(shoulder_raise=1.0))[y0:y1, x0:x1])
        breath = _edge_rise(rest[y0:y1, x0:x1], r.render(motion(breath=1.0))[y0:y1, x0:x1])
        assert 0.5 * SHRUG_LIFT * s < shrug < 1.2 * SHRUG_LIFT * s, (side, shrug)
        assert 0.4 * BREATH_LIFT * s < breath < 1.5 * BREATH_LIFT * s, (side, breath)


@pytest.mark.parametrize("name", NAMES)
def test_body_leaves_head_and_background_still(name: str) -> None:
    r = _renderer(name)
    rest = r.render(motion())
    frame = r.render(motion(shoulder_raise=1.0, breath=1.0))
    still = r.still_mask()
    assert still.mean() > 0.3
    np.testing.assert_array_equal(frame[still], rest[still])
    # the face (inside the head ellipse) is not moved by a shrug
    cx, cy, rx, ry = r.head.ellipse()
    yy, xx = np.mgrid[0 : r.h, 0 : r.w]
    face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 0.8**2
    shrug = r.render(motion(shoulder_raise=1.0))  # (breath also nudges the head itself a little)
    np.testing.assert_array_equal(shrug[face], rest[face])
    # and breathing out (breath <= 0) is the photo's own pose for the body: never below it, nothing
    # uncovered (the head region has its own slight breathing motion)
    rx0, ry0, rx1, ry1 = r.roi
    body = np.ones(rest.shape[:2], bool)
    body[ry0:ry1, rx0:rx1] = False
    np.testing.assert_array_equal(r.render(motion(breath=-1.0))[body], rest[body])


@pytest.mark.parametrize("name", NAMES)
def test_lift_is_smooth_and_never_folds(name: str) -> None:
    r = _renderer(name)
    body = r._body
    assert body is not None
    d = body.lift(motion(shoulder_raise=1.0, breath=1.0, head_roll=8.0))
    assert d is not None
    src_y = body.Y + d  # region coordinates
    assert (np.diff(src_y, axis=0) > 0.05).all()  # strictly increasing down every column: no fold
    assert float(np.abs(np.diff(d, axis=1)).max()) < 1.0  # no tear across
    # a small step of the motion moves the picture a little (no pops): every pixel changes by no more
    # than the step's lift (under a pixel) across the photo's own local contrast allows
    m1, m2 = motion(shoulder_raise=0.50, breath=0.5), motion(shoulder_raise=0.52, breath=0.52)
    a, b = r.render(m1).astype(np.float32), r.render(m2).astype(np.float32)
    l1, l2 = body.lift(m1), body.lift(m2)
    assert l1 is not None and l2 is not None
    step = float(np.abs(l2 - l1).max())
    assert 0.1 < step < 1.0, step
    contrast = cv2.dilate(np.abs(np.diff(a, axis=0, append=a[-1:])), np.ones((5, 3), np.uint8))
    assert (np.abs(a - b) <= 1.5 * step * contrast + 8.0).all()
    assert float(np.abs(a - b).mean()) < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_edge_band_composite_is_the_whole_blend(name: str) -> None:
    """The torso is composited by copying where the lifted mask is whole and blending only along the
    person's edge (body.EdgeBand); for every band's lift that is the same picture, to rounding, as
    blending the whole region by the warped mask."""
    from flowact.render.body import _blend

    r = _renderer(name)
    body = r._body
    assert body is not None and len(body.bands) >= 2
    src = r._base4
    for m in (motion(breath=1.0), motion(breath=0.7, shoulder_raise=0.3, head_roll=-4.0),
              motion(breath=1.0, shoulder_raise=1.0, head_roll=12.0)):
        d = body.lift(m)
        assert d is not None
        warped = cv2.remap(body.source, body.X, body.Y + d, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        whole = src.copy()
        _blend(warped, body.rgba, whole[body.y0 : body.y1, body.x0 : body.x1])
        got = body.apply(src, m)
        diff = np.abs(got[..., :3].astype(np.int16) - whole[..., :3].astype(np.int16))
        assert int(diff.max()) <= 1, (m.nonzero(), int(diff.max()))
