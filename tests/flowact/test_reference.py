"""Reference portrait analysis on real portraits: every bad input is a PortraitError that names the
problem; every common encoding is accepted; framing for the supported output sizes; the cache."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data

import flowact.reference as ref
from flowact.errors import PortraitError
from flowact.reference import analyze_portrait, load_image
from tests.fixtures.portraits import (
    ASTRONAUT,
    GRACE,
    animated_gif,
    encode,
    exif_rotated_jpeg,
    rgb,
    rgba_png,
    rotate_in_depth,
    tiny_face,
    two_faces,
)

_REAL_DETECT = ref.detect_faces


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


def test_two_faces_uses_largest_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    img = two_faces()
    with caplog.at_level(logging.WARNING, logger="flowact.reference"):
        a = analyze_portrait(img)
    assert a.faces_found == 2
    assert any("2 faces found, using the largest" in r.getMessage() for r in caplog.records)
    # the framed face is Grace Hopper's (the larger), not the astronaut's
    grace, astro = analyze_portrait(GRACE), analyze_portrait(ASTRONAUT)
    x0, y0, x1, y1 = (int(v) for v in grace.face_box)

    def diff(b: ref.PortraitAnalysis) -> float:
        return float(np.abs(a.image[y0:y1, x0:x1].astype(int) - b.image[y0:y1, x0:x1].astype(int)).mean())

    assert diff(grace) < 0.5 * diff(astro), (diff(grace), diff(astro))
    assert float(np.abs(a.landmarks[:, :2] - grace.landmarks[:, :2]).mean()) < 0.05 * grace.eye_distance


def test_two_faces_refused_when_configured() -> None:
    with pytest.raises(PortraitError, match="2 faces found"):
        analyze_portrait(two_faces(), on_multiple_faces="refuse")


def test_face_too_small() -> None:
    with pytest.raises(PortraitError, match="the face is too small"):
        analyze_portrait(tiny_face())


def test_profile_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real profile photograph ships in the bundled packages, and MediaPipe's detector finds no face
    in a true profile anyway. So the profile check is fed Grace Hopper's real mesh turned 60 degrees in
    depth (its own z): the geometry a camera would see. A 10 degree turn must still be accepted."""
    img = rgb(GRACE)
    frontal = ref.detect_faces(img)[0]
    assert ref._check_face(rotate_in_depth(frontal, 10), "slight") > 0
    turned = rotate_in_depth(frontal, 60)
    monkeypatch.setattr(ref, "detect_faces", lambda *_a, **_k: [turned])
    with pytest.raises(PortraitError, match="profile"):
        analyze_portrait(img)


def test_huge_image_is_downscaled(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    g = rgb(GRACE)
    huge = cv2.resize(g, (g.shape[1] * 8, g.shape[0] * 8), interpolation=cv2.INTER_LINEAR)  # 4096x4800
    seen: list[tuple[int, ...]] = []

    def spy(img: np.ndarray, max_faces: int = 4) -> list[np.ndarray]:
        seen.append(img.shape)
        return _REAL_DETECT(img, max_faces)

    monkeypatch.setattr(ref, "detect_faces", spy)
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
    assert abs(float(re[1] - le[1])) < 1.0 and re[0] > le[0]
    chin, forehead = a.landmarks[ref.CHIN], a.landmarks[ref.FOREHEAD]
    assert chin[1] > forehead[1]  # upright face in the framed output


def test_animated_gif_first_frame() -> None:
    data = animated_gif()
    img = load_image(data)
    g = rgb(GRACE)
    assert img.shape == g.shape
    assert np.abs(img.astype(int) - g.astype(int)).mean() < 12  # palette-quantised first frame, not noise
    assert analyze_portrait(data).faces_found == 1


# --- framing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(854, 480), (512, 512), (1280, 720)])
@pytest.mark.parametrize("portrait", [GRACE, ASTRONAUT], ids=["grace", "astronaut"])
def test_framing_sizes(portrait: Path, size: tuple[int, int]) -> None:
    w, h = size
    a = analyze_portrait(portrait, width=w, height=h)
    assert a.image.shape == (h, w, 3) and a.size == (w, h)
    le, re = _eye_line(a)
    mid = (le + re) / 2
    assert abs(float(mid[0]) - w / 2) < 0.01 * w  # centred
    assert abs(float(mid[1]) - 0.40 * h) < 0.01 * h
    assert abs(float(re[1] - le[1])) < 0.5  # eyes level
    face_h = float(np.linalg.norm(a.landmarks[ref.CHIN, :2] - a.landmarks[ref.FOREHEAD, :2]))
    assert abs(face_h - 0.42 * h) < 0.01 * h
    x0, y0, x1, y1 = a.face_box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    mx0, my0, mx1, my1 = a.mouth_box
    assert x0 < mx0 < mx1 < x1 and my0 > mid[1]
    # the framed pixels really are the face: re-detection lands on the same landmarks
    again = ref.detect_faces(a.image)[0]
    assert float(np.abs(again[:, :2] - a.landmarks[:, :2]).mean()) < 0.05 * a.eye_distance


# --- cache ----------------------------------------------------------------------------------------


def test_cache_hit_is_fast_and_equal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = analyze_portrait(GRACE, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_detection(*_a: object, **_k: object) -> list[np.ndarray]:
        raise AssertionError("cache miss: face detection ran again")

    monkeypatch.setattr(ref, "detect_faces", no_detection)
    t = time.perf_counter()
    second = analyze_portrait(GRACE, cache_dir=tmp_path)
    took = time.perf_counter() - t
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.landmarks, second.landmarks)
    assert second.face_box == first.face_box and second.source_hash == first.source_hash
    # target < 100 ms (about 15 ms measured; bench/render.py prints it). The bound here is loose
    # because the 2-core test box is shared by several busy processes.
    assert took < 0.5, took
    # another output size is a different entry, not a wrong hit
    monkeypatch.setattr(ref, "detect_faces", _REAL_DETECT)
    other = analyze_portrait(GRACE, width=512, height=512, cache_dir=tmp_path)
    assert other.image.shape == (512, 512, 3)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_unreadable_cache_entry_is_ignored(tmp_path: Path) -> None:
    first = analyze_portrait(ASTRONAUT, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"garbage")
    again = analyze_portrait(ASTRONAUT, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
