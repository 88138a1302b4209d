"""The invented mouth interior (render/mouth_interior.py) on real closed-mouth portraits, measured on the
rendered pixels: separate upper teeth with shading (not a flat band), a darker cavity below them, all in
a plausible tonal range; and a turned photo is turned less further than towards the camera, and its
open mouth opened less beyond the photo's own (renderer's FRONTAL_YAW rule)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from flowact.motion.params import MOTION_DIM, P
from flowact.reference import analyze_portrait, face_pose
from flowact.render.renderer import Renderer
from tests.fixtures.portraits import ALL_PORTRAITS

CLOSED = ("grace", "franck")  # lips closed in the photo: the teeth are invented
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@cache
def _renderer(name: str) -> Renderer:
    return Renderer(analyze_portrait(ALL_PORTRAITS[name], cache_dir=None))


def _motion(**kw: float) -> np.ndarray:
    m = np.zeros(MOTION_DIM, np.float32)
    for k, v in kw.items():
        m[P[k]] = v
    return m


def _open(r: Renderer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A mouth open for speech: (luma frame, x columns across the gap, its upper and lower edge there)."""
    m = _motion(jaw_open=0.7, mouth_wide=0.15)
    luma = r.render(m).astype(np.float32) @ LUMA
    up, lo = r.mouth_gap(m)
    left, right = max(up[0, 0], lo[0, 0]), min(up[-1, 0], lo[-1, 0])
    xs = np.arange(int(np.ceil(left)), int(np.floor(right)) + 1)
    return luma, xs, np.interp(xs, up[:, 0], up[:, 1]), np.interp(xs, lo[:, 0], lo[:, 1])


@pytest.mark.parametrize("name", CLOSED)
def test_invented_teeth_are_separate_shaded_teeth(name: str) -> None:
    r = _renderer(name)
    assert r._interior is None and not r._teeth_show  # the teeth here are the invented ones
    s = r.rig.scale
    luma, xs, uy, ly = _open(r)
    # the face's midline: the upper lip's middle (a tilted head's gap is not centred on it to the pixel)
    up13 = r.rig.index[13]
    mid = float(r.rig.points[up13, 0] + (_motion(jaw_open=0.7, mouth_wide=0.15) @ r.rig.basis[:, up13, 0]))
    central = np.abs(xs - mid) < 0.3 * s
    # a row through the middle of the upper teeth: dark lines between bright teeth, not a flat band
    row = np.array([luma[int(round(u + 0.045 * s)), x] for x, u in zip(xs, uy, strict=True)])[central]
    smooth = np.convolve(row, np.ones(5) / 5, "same")[2:-2]
    dips = row[2:-2] - smooth
    at = np.flatnonzero((dips[1:-1] < dips[:-2]) & (dips[1:-1] < dips[2:]) & (dips[1:-1] < -4.0)) + 3
    assert 3 <= len(at) <= 9, (len(at), np.round(row))  # between teeth (incisors, laterals, canines), not noise
    # fine lines, not gaps: at 480p a line darker by a third of the teeth beside it read as a picket
    # fence (0.33-0.39 before; a real mouth at this size shows its teeth's edges faintly)
    beside = np.array([row[max(0, i - 3) : i + 4].max() for i in range(len(row))])
    assert float(np.median((beside[at] - row[at]) / beside[at])) < 0.28, np.round(row)
    # and they sit around an arch: the central incisors (midline to the next line) look wider than the
    # laterals beside them, not a row of equal blocks
    x_at = xs[central][at] - mid
    centre = int(np.argmin(np.abs(x_at)))
    assert abs(x_at[centre]) < 2.0, x_at  # the line between the central incisors is on the midline
    for step in (1, -1):
        k1, k2 = centre + step, centre + 2 * step
        if 0 <= k2 < len(x_at):
            incisor, lateral = abs(x_at[k1] - x_at[centre]), abs(x_at[k2] - x_at[k1])
            assert incisor > 1.2 * lateral, (incisor, lateral, x_at)
    # the teeth are lit in front and turn into shadow towards the corners
    side = (np.abs(xs - mid) > 0.3 * s) & (np.abs(xs - mid) < 0.37 * s)
    front = float(row[np.abs(xs[central] - mid) < 0.12 * s].mean())
    if side.any():
        far = float(np.mean([luma[int(round(u + 0.03 * s)), x] for x, u in zip(xs[side], uy[side], strict=True)]))
        assert far < front - 15, (far, front)
    # down the middle: the teeth under the lip's shadow, brighter below it, then the darker cavity
    cx = int(round(mid))
    u, lo = float(np.interp(cx, xs, uy)), float(np.interp(cx, xs, ly))
    col = luma[int(np.ceil(u)) : int(lo), cx - 1 : cx + 2].mean(axis=1)
    tooth_len = max(3, int(0.06 * s))
    teeth, cavity = float(col[:tooth_len].max()), float(col[len(col) // 2 : len(col) - 2].mean())
    assert col[0] < teeth - 5, np.round(col)  # shadow of the upper lip on the teeth
    assert teeth > cavity + 60, (teeth, cavity)
    # plausible tones: teeth short of pure white and not brighter than the photo's light skin allows,
    # the cavity dark but not a black hole in the middle
    skin = float(np.percentile(r.base[int(lo) + 3 : int(lo) + 10, xs[0] : xs[-1]] @ LUMA, 90))
    assert 120 < teeth < min(245.0, 1.4 * skin), (teeth, skin)
    assert 5 < cavity < 0.5 * skin, (cavity, skin)


def test_a_turned_photo_turns_further_less_than_back() -> None:
    """A photo turned ~22 degrees turns less further than back towards the camera; a frontal one turns
    the same both ways."""
    for name, turned in (("einstein_turned", True), ("grace", False)):
        r = _renderer(name)
        yaw0 = face_pose(r.reference.landmarks)[0]
        assert (abs(yaw0) > 15) == turned, yaw0
        nose = r.rig.index[4]
        rest = r.displaced_points(_motion())[nose, 0]
        toward = abs(r.displaced_points(_motion(head_yaw=float(np.sign(yaw0)) * 8.0))[nose, 0] - rest)
        further = abs(r.displaced_points(_motion(head_yaw=-float(np.sign(yaw0)) * 8.0))[nose, 0] - rest)
        if turned:
            assert further < 0.6 * toward, (further, toward)
        else:
            assert abs(further - toward) < 0.1 * toward, (further, toward)


def test_a_turned_photo_nods_and_tilts_less() -> None:
    """A photo turned ~22 degrees nods and tilts by the turned-photo share of a frontal photo's (its
    chin moves that much less); a frontal one as far as asked."""
    for name, turned in (("einstein_turned", True), ("grace", False)):
        r = _renderer(name)
        chin = r.rig.index[152]
        rest = r.displaced_points(_motion())[chin]
        for param, axis in (("head_pitch", 1), ("head_roll", 0)):
            moved = abs(float(r.displaced_points(_motion(**{param: 6.0}))[chin, axis] - rest[axis]))
            share = r._further
            try:
                r._further = 1.0
                full = abs(float(r.displaced_points(_motion(**{param: 6.0}))[chin, axis] - rest[axis]))
            finally:
                r._further = share
            assert full > 1.0, (name, param, full)
            if turned:
                assert share < 0.6 and abs(moved - share * full) < 0.15 * full, (param, moved, full, share)
            else:
                assert share == 1.0 and moved == full, (param, moved, full)


def test_a_turned_open_photo_opens_less_beyond_its_own_mouth() -> None:
    """The turned Einstein speaks with his mouth open: opened wider than the photo, the new gap is
    the turned-photo share (renderer._jaw_further, 0.74 at his 20 degrees; 1 within JAW_FRONTAL_YAW)
    of a frontal photo's."""
    r = _renderer("einstein_turned")

    def gap_at_centre() -> float:
        up, lo = r.mouth_gap(_motion(jaw_open=1.0))
        cx = float(up[:, 0].mean())
        return float(np.interp(cx, lo[:, 0], lo[:, 1]) - np.interp(cx, up[:, 0], up[:, 1]))

    turned = gap_at_centre()
    share = r._jaw_further
    try:
        r._jaw_further = 1.0
        frontal = gap_at_centre()
    finally:
        r._jaw_further = share
    assert share < 0.8 and frontal > 3.0, (share, frontal)
    assert turned < (share + 0.05) * frontal, (turned, frontal, share)


@pytest.mark.parametrize(("name", "roll", "share"), [("grace", 0.0, 0.4), ("franck", 0.0, 0.4), ("mona_lisa", 0.0, 0.4),
                                                   ("grace", 16.0, 0.45), ("franck", -16.0, 0.45)])
def test_a_wide_open_mouth_narrows_into_its_corners(name: str, roll: float, share: float,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide open, the painted mouth interior (where the frame differs from the same frame without it)
    tapers into the corners where the lips meet, not a hole with blunt ends: it reaches to within a
    fiftieth of each corner, and a twentieth of the way in it is under `share` of its height in the
    middle (0.4 upright; 0.45 rolled, where the smaller mouth's anti-aliased edge weighs more: 0.30-0.40
    measured), measured across the mouth (on the normal of the line through its corners). So also for a
    head rolled 16 degrees, whose mouth is painted along its own axis: painted in screen columns, its
    opening stopped short of the corners and began with a square end (a twentieth in, 0.54 of the
    middle)."""
    r = _renderer(name)
    m = _motion(jaw_open=1.0, head_roll=roll)
    painted = r.render(m).astype(np.float32) @ LUMA
    with monkeypatch.context() as patch:
        patch.setattr(r, "_mouth", lambda *args, **kwargs: None)
        bare = r.render(m).astype(np.float32) @ LUMA
    changed = np.abs(painted - bare) > 12.0
    up, lo = r.mouth_gap(m)
    c0, c1 = (up[0] + lo[0]) / 2, (up[-1] + lo[-1]) / 2
    axis = (c1 - c0) / np.linalg.norm(c1 - c0)
    normal = np.array([-axis[1], axis[0]])
    assert abs(np.degrees(np.arctan2(axis[1], axis[0]))) > 0.6 * abs(roll)  # the mouth is tilted with the head
    u = lambda p: float((p - c0) @ axis)  # noqa: E731
    left, right = max(u(up[0]), u(lo[0])), min(u(up[-1]), u(lo[-1]))

    def opening(at: float) -> int:
        """Painted pixels on the mouth's normal through the point `at` along its axis (1/3 px steps)."""
        pts = c0 + at * axis + np.arange(-0.5, 0.5, 1 / 3 / r.rig.scale)[:, None] * r.rig.scale * normal
        ij = np.unique(np.round(pts).astype(int), axis=0)
        return int(changed[ij[:, 1], ij[:, 0]].sum())

    width = right - left
    centre = opening(left + 0.5 * width)
    assert centre > 0.3 * r.rig.scale, centre  # wide open
    for corner, inward in ((left, 1.0), (right, -1.0)):
        reach, near = opening(corner + inward * 0.02 * width), opening(corner + inward * 0.06 * width)
        assert reach > 0 and near < share * centre, (reach, near, centre)


def _graded(gains: tuple[float, float, float]) -> Renderer:
    """Grace Hopper's portrait with a colour grade laid over it (each channel scaled), analysed anew."""
    import dataclasses

    a = analyze_portrait(ALL_PORTRAITS["grace"], cache_dir=None)
    img = np.clip(a.image.astype(np.float32) * np.array(gains, np.float32), 0, 255).astype(np.uint8)
    return Renderer(dataclasses.replace(a, image=img))


def _interior_rgb(r: Renderer) -> np.ndarray:
    """The mean colour of the invented interior's middle rows, the mouth open for speech."""
    m = _motion(jaw_open=0.7, mouth_wide=0.15)
    frame = r.render(m).astype(np.float32)
    up, lo = r.mouth_gap(m)
    left, right = max(up[0, 0], lo[0, 0]), min(up[-1, 0], lo[-1, 0])
    xs = np.arange(int(left + 0.3 * (right - left)), int(right - 0.3 * (right - left)))
    ys = np.round(0.5 * (np.interp(xs, up[:, 0], up[:, 1]) + np.interp(xs, lo[:, 0], lo[:, 1]))).astype(np.intp)
    out: np.ndarray = frame[ys, xs].mean(axis=0)
    return out


def test_the_invented_interior_takes_the_photos_colour_grade() -> None:
    """An ordinary photo's invented interior keeps its neutral colours (the grade gain is exactly 1 for
    every closed-mouth test portrait). The same portrait under an amber film grade (blue cut to a
    quarter, as a real film still in the fidelity set had it) gets an interior graded the same way:
    where a neutral interior stood out purple beside the amber skin, its blue now falls with the skin's."""
    for name in ("grace", "franck", "mona_lisa", "biden_full_length"):
        gain = _renderer(name)._cast
        assert name == "mona_lisa" or np.array_equal(gain, np.ones(3, np.float32)), (name, gain)
    neutral = _interior_rgb(_renderer("grace"))
    amber = _interior_rgb(_graded((1.1, 1.0, 0.25)))
    # blue against red, relative to the neutral interior's: the grade's own 0.25 / 1.1, give or take
    ratio = (amber[2] / amber[0]) / (neutral[2] / neutral[0])
    assert ratio < 0.45, (neutral, amber)
    # and about as bright as the neutral interior was (the grade keeps the luma)
    assert abs(float(amber @ LUMA) - float(neutral @ LUMA)) < 0.35 * float(neutral @ LUMA) + 4, (neutral, amber)


def test_the_gap_edges_are_rounded_through_the_lip_points() -> None:
    """The gap's edges (a few lip points) are painted as rounded curves: the ends stay, every angle gets
    gentler, and the curve stays within the polygon's reach (a wide-open mouth showed a hexagonal hole)."""
    from flowact.render.mouth_interior import rounded

    edge = np.array([[0, 0], [10, 8], [20, 11], [30, 8], [40, 0]], np.float32)  # a lower lip's few points
    out = rounded(edge)

    def turn(p: np.ndarray) -> float:  # the sharpest turn between consecutive segments, degrees
        d = np.diff(p, axis=0)
        a = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
        return float(np.abs(np.diff(a)).max())

    assert np.allclose(out[0], edge[0]) and np.allclose(out[-1], edge[-1])
    assert len(out) > 2 * len(edge) and np.all(np.diff(out[:, 0]) > 0)  # still sorted along the mouth
    assert turn(out) < 0.5 * turn(edge), (turn(out), turn(edge))
    assert out[:, 1].max() <= edge[:, 1].max() and out[:, 1].max() > edge[:, 1].max() - 1.0
    assert np.allclose(rounded(edge[:2]), edge[:2])  # too few points to round: as given
