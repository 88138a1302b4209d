"""Framing any photo into the output frame (flowact.framing through analyze_portrait): no streaked
fill at any frame edge in any mode, the face keeps a sensible size and headroom, `crop` covers the
frame with the photo, `fit` shows all of it. Measured on the rendered pixels of real portraits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import flowact.faces as faces
import flowact.reference as ref
from flowact.framing import plan_framing
from flowact.reference import analyze_portrait
from tests.fixtures.portraits import ALL_PORTRAITS, ASTRONAUT, GRACE, rgb

SIZES = [(854, 480), (512, 512), (1280, 720), (480, 854)]
BAND = 24  # px at each frame edge


def photos() -> dict[str, np.ndarray]:
    g = rgb(GRACE)
    return {
        "grace": g,  # 512x600, tall: the bundled demo
        "astronaut": rgb(ASTRONAUT),  # square
        "closeup": np.ascontiguousarray(g[90:420, 150:420]),  # the face fills the photo: fill on every side
        # wide: Grace between wider copies of her own backdrop (the flag, the blue wall): one face, 3:2
        "landscape": np.ascontiguousarray(np.hstack([cv2.resize(g[:, :140], (200, 600)), g,
                                                     cv2.resize(g[:, 440:], (200, 600))])),
    }


PHOTOS = photos()


def streaks(frame: np.ndarray) -> list[str]:
    """The frame edges whose border band is stretched edge pixels: along the band's depth (into the
    frame) the pixels barely change, while across it they do (a smoothed image, so grain cannot hide
    a streak). Returns the offending sides."""
    g = cv2.GaussianBlur(frame.astype(np.float32).mean(axis=2), (0, 0), 1.5)
    bands = {"left": g[:, :BAND], "right": g[:, -BAND:], "top": g[:BAND, :].T, "bottom": g[-BAND:, :].T}
    bad = []
    for side, b in bands.items():  # rows run along the band's depth
        along = float(np.abs(np.diff(b, axis=1)).mean())
        across = float(np.abs(np.diff(b, axis=0)).mean())
        if across > 0.3 and along < 0.15 * across:
            bad.append(side)
    return bad


def test_streak_metric_detects_stretched_edges() -> None:
    """The positive control: the old framing (edge pixels replicated) of the demo portrait is flagged
    on both sides; the photo's own pixels are not."""
    img = PHOTOS["grace"]
    lm = faces.find_faces(img)[0]
    le, r_e = ref._eye_centres(lm)
    plan = plan_framing((le + r_e) / 2, 0.0, faces.face_size(lm), img.shape[1], img.shape[0], 854, 480, "fit")
    old = cv2.warpAffine(img, plan.matrix, (854, 480), borderMode=cv2.BORDER_REPLICATE)
    assert {"left", "right"} <= set(streaks(old))
    assert streaks(cv2.resize(img, (854, 480))) == []


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", ["fill", "crop", "fit"])
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_no_streaks_at_any_edge(name: str, mode: str, size: tuple[int, int]) -> None:
    w, h = size
    a = analyze_portrait(PHOTOS[name], width=w, height=h, framing=mode)  # type: ignore[arg-type]
    assert a.image.shape == (h, w, 3)
    assert streaks(a.image) == [], streaks(a.image)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_fill_keeps_face_size_and_headroom(name: str, size: tuple[int, int]) -> None:
    w, h = size
    a = analyze_portrait(PHOTOS[name], width=w, height=h)
    lm = a.landmarks
    face_h = float(np.linalg.norm(lm[ref.CHIN, :2] - lm[ref.FOREHEAD, :2]))
    assert 0.42 * h - 1 <= face_h <= 0.53 * h, face_h / h
    mid = lm[[33, 133, 362, 263], :2].mean(axis=0)
    assert abs(float(mid[0]) - w / 2) <= 0.1 * w + 1
    assert float(lm[ref.FOREHEAD, 1]) >= 0.3 * face_h  # room for the top of the head
    assert float(lm[ref.CHIN, 1]) <= h - 0.1 * face_h  # and the chin and neck in the frame


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_crop_covers_the_frame_with_the_photo(name: str) -> None:
    img = PHOTOS[name]
    a = analyze_portrait(img, framing="crop")
    lm = faces.refine_landmarks(img, faces.find_faces(img)[0])  # a small face is read again, as the analysis does
    le, r_e = ref._eye_centres(lm)
    angle = float(np.radians(ref.face_roll(lm)))  # levelled: the levelled photo fills the frame
    plan = plan_framing((le + r_e) / 2, angle, faces.face_size(lm), img.shape[1], img.shape[0], 854, 480, "crop")
    assert plan.covered == 1.0
    # every output pixel is the photo itself (no backdrop): the frame equals the plain warp (with the
    # framing's border mode: OpenCV 5.1 rounds a few interior pixels differently by border mode)
    plain = cv2.warpAffine(img, plan.matrix, (854, 480), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(a.image, plain)
    assert 0 < a.face_box[0] and a.face_box[2] < 854  # the face is still in the frame


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_fit_shows_the_whole_photo(name: str) -> None:
    img = PHOTOS[name]
    lm = faces.find_faces(img)[0]
    le, r_e = ref._eye_centres(lm)
    angle = float(np.arctan2(r_e[1] - le[1], r_e[0] - le[0]))
    plan = plan_framing((le + r_e) / 2, angle, faces.face_size(lm), img.shape[1], img.shape[0], 854, 480, "fit")
    hh, ww = img.shape[:2]
    corners = np.array([[0, 0], [ww - 1, 0], [0, hh - 1], [ww - 1, hh - 1]], np.float32)
    out = corners @ plan.matrix[:, :2].T + plan.matrix[:, 2]
    assert (out[:, 0] >= -1).all() and (out[:, 0] <= 855).all() and (out[:, 1] >= -1).all() and (out[:, 1] <= 481).all()


def _tilted_further(img: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned by `degrees` more about its face (its corners mirrored in)."""
    lm = faces.find_faces(img)[0]
    centre = tuple(float(v) for v in lm[:, :2].mean(axis=0))
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize(("name", "kept"), [("obama_speaking", "all"), ("franck", "all"),
                                            ("franck_eyes_closed_laugh+10", "limit"), ("astronaut", "none")])
def test_a_tilted_head_keeps_its_tilt_where_levelling_would_show_the_photo_askew(name: str, kept: str) -> None:
    """A photo that does not fill the frame is not rotated (its edges would show askew and its body
    tilt the other way): the head keeps the tilt it was photographed with (Obama, 5 degrees; Franck,
    12), up to KEEP_ROLL (a photo of Franck laughing, 15 degrees, turned 10 further: levelled by the 10
    beyond it).
    Where the levelled photo still fills the frame, the eyes are levelled (the astronaut, 3 degrees)."""
    base, _, more = name.partition("+")
    src = ref.load_image(ALL_PORTRAITS[base])
    if more:
        src = _tilted_further(src, -float(more) * np.sign(ref.face_roll(faces.find_faces(src)[0])))
    roll = ref.face_roll(faces.find_faces(src)[0])
    framed = ref.face_roll(analyze_portrait(src, cache_dir=None).landmarks)
    want = {"all": roll, "limit": float(np.sign(roll) * ref.KEEP_ROLL), "none": 0.0}[kept]
    assert abs(roll) > 2.5 and (kept != "limit" or abs(roll) > ref.KEEP_ROLL + 2), roll
    assert abs(framed - want) < 0.3, (roll, framed, want)


def test_what_moves_stays_inside_a_photo_that_does_not_fill_the_frame() -> None:
    """A close-up (the face fills the photo, the fill shows on every side): the jaw drops the chin at
    the photo's bottom edge, a nod and turn move the head at its top and sides, a breath and shrug lift
    the shoulders. The fill around the photo never changes, and what moves is cut by the photo's edge.
    The same frames with the edge left alone change over a thousand fill pixels (the chin dragged the
    photo's bottom edge down into the fill), so the scene does reach the edge."""
    from flowact.motion.params import MOTION_DIM, P
    from flowact.render.renderer import Renderer

    a = analyze_portrait(PHOTOS["closeup"], cache_dir=None)
    assert a.photo is not None and a.photo.shape == a.image.shape[:2]
    fill = a.photo == 0
    assert fill.mean() > 0.3
    r = Renderer(a)
    assert r.still_mask()[fill].all()
    moves = [{"jaw_open": 1.0}, {"head_pitch": 12.0, "head_yaw": -15.0}, {"head_roll": 8.0, "breath": 1.0,
                                                                           "shoulder_raise": 1.0}]
    unclipped = 0
    for move in moves:
        m = np.zeros(MOTION_DIM, np.float32)
        for k, v in move.items():
            m[P[k]] = v
        frame = r.render(m)
        assert np.array_equal(frame[fill], r.base[fill]), move
        assert np.abs(frame.astype(np.int16) - r.base).max() > 40, move  # the face did move
        edge, r._edge = r._edge, None
        unclipped += int((np.abs(r.render(m).astype(np.int16) - r.base).max(axis=2) > 8)[fill].sum())
        r._edge = edge
    assert unclipped > 500, unclipped  # 1112 here


@pytest.mark.parametrize("which", ["closeup", "obama_speaking"])
def test_the_photo_edge_is_restored_once_everywhere_the_warps_reach(which: str) -> None:
    """PhotoEdge.restore puts the fill back and blends the feathered edge by the photo's alpha over
    every pixel the head and body warps can change, each exactly once (its boxes grow down a vertical
    edge but never overlap): the same, to rounding, as one blend of the whole frame there."""
    from flowact.render.renderer import Renderer

    a = analyze_portrait(PHOTOS[which] if which in PHOTOS else rgb(ALL_PORTRAITS[which]), cache_dir=None)
    assert a.photo is not None
    r = Renderer(a)
    edge = r._edge
    assert edge is not None
    changes = np.zeros(a.photo.shape, bool) if r._body is None else r._body.moving(a.photo.shape)
    rx0, ry0, rx1, ry1 = r.roi
    changes[ry0:ry1, rx0:rx1] = True
    # a frame the warps scrambled wherever they reach (elsewhere it is the rest frame)
    noise = np.random.default_rng(0).integers(0, 256, r.base.shape, dtype=np.uint8)
    frame = np.where(changes[..., None], noise, r.base)
    alpha = (a.photo.astype(np.float32) / 255)[..., None]
    want = np.where((changes & (a.photo < 255))[..., None], frame * alpha + r.base * (1 - alpha), frame)
    got = frame.copy()
    edge.restore(got, r.base)
    assert float(np.abs(got - want).max()) <= 1.0
    if which == "obama_speaking":  # a photo narrower than the frame: its two straight sides, a box each
        assert len(edge.blends) == 2, [rect for rect, _i, _o in edge.blends]
