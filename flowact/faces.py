"""Faces in a photo: MediaPipe's face mesh, full-range detector and person segmentation, and the
search that finds small or off-centre faces the mesh's own detector misses.

MediaPipe `0.10.21` is the last release that ships its face-mesh models; it is installed with
`--no-deps` (it declares numpy<2 / protobuf<5 but runs with numpy 2 and protobuf 6). 478 landmarks with
iris refinement, fully offline. Every graph is built once per process and run under one lock.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from flowact.types import UInt8Array

__all__ = ["CHIN", "FOREHEAD", "LEFT_EYE", "LIPS", "RIGHT_EYE", "box_overlap", "detect_faces", "face_size",
           "far_faces", "find_faces", "head_box", "refine_landmarks", "segment_person", "warm_up"]

# MediaPipe face-mesh landmark indices
LEFT_EYE = (33, 133)
RIGHT_EYE = (362, 263)
CHIN = 152
FOREHEAD = 10
LIPS = (61, 291, 0, 17, 13, 14, 78, 308)

REFINE_SIDE = 384  # px: a face whose 2.5x window is smaller is looked at again, enlarged to this size
_MESH_LOCK = threading.Lock()
_MESHES: dict[int, Any] = {}  # max_faces -> FaceMesh (static images); -1 SelfieSegmentation; -2 FaceDetection


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """MediaPipe's C++ (glog, TFLite) and its protobuf shim write to fd 2 directly; keep the user's
    terminal clean (one-line errors) unless FLOWACT_NATIVE_LOGS=1."""
    if os.environ.get("FLOWACT_NATIVE_LOGS") == "1":
        yield
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mediapipe() -> Any:
    """`import mediapipe`, minus 0.5 s: its package init imports `drawing_utils`, which imports
    matplotlib.pyplot (0.4 s, and matplotlib itself 0.2 s) only for a plotting helper we never call.
    While mediapipe imports, stand-ins for both that load the real module on first attribute use sit in
    sys.modules; they are removed right after, so any later `import matplotlib.pyplot` is the real one
    (and drawing_utils still works)."""
    if "mediapipe" in sys.modules or "matplotlib.pyplot" in sys.modules:
        import mediapipe

        return mediapipe
    import importlib
    import types

    names = ("matplotlib.pyplot",) if "matplotlib" in sys.modules else ("matplotlib", "matplotlib.pyplot")
    stand_ins = {name: types.ModuleType(name) for name in names}

    def drop() -> None:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]

    def forward(name: str) -> Callable[[str], Any]:
        def real(attr: str) -> Any:
            drop()
            return getattr(importlib.import_module(name), attr)
        return real

    for name, module in stand_ins.items():
        module.__getattr__ = forward(name)  # type: ignore[method-assign]
        sys.modules[name] = module
    if "matplotlib" in stand_ins:  # `import matplotlib.pyplot as plt` reads the parent's attribute
        stand_ins["matplotlib"].pyplot = stand_ins["matplotlib.pyplot"]  # type: ignore[attr-defined]
    try:
        import mediapipe
    finally:
        drop()
    return mediapipe


def _process(key: int, build: Callable[[Any], Any], img: UInt8Array) -> Any:
    """Run MediaPipe graph `key` (built by `build(mediapipe)` once per process: loading a graph costs
    ~0.5 s, reuse is ~10x cheaper) on an image, under the one lock all graphs share."""
    with _MESH_LOCK, _quiet_native_stderr():
        graph = _MESHES.get(key)
        if graph is None:
            graph = _MESHES[key] = build(_import_mediapipe())
        return graph.process(np.ascontiguousarray(img))


def detect_faces(img: UInt8Array, max_faces: int = 6) -> list[np.ndarray]:
    """All faces' landmarks (478, 3) in pixels (z scaled like x), largest first. Thread-safe (one lock)."""
    h, w = img.shape[:2]
    result = _process(max_faces, lambda mp: mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True, min_detection_confidence=0.5), img)
    faces = []
    for lm in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark], dtype=np.float32)
        faces.append(pts)
    faces.sort(key=lambda f: -(np.ptp(f[:, 0]) * np.ptp(f[:, 1])))
    return faces


def segment_person(img: UInt8Array) -> np.ndarray:
    """(H, W) float32 0..1: where a person is (MediaPipe selfie segmentation, general model, shipped in
    the same wheel as the face mesh). Thread-safe (the face mesh's lock)."""
    mask = _process(-1, lambda mp: mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0),
                    img).segmentation_mask
    return np.asarray(mask, dtype=np.float32)


def warm_up() -> None:
    """Load MediaPipe's face-mesh and person-segmentation graphs now (about 0.3 s import + 0.6 s graphs
    on this CPU, once per process), so the first new portrait of a long-running process is analysed
    in ~0.1 s."""
    detect_faces(np.zeros((64, 64, 3), np.uint8))
    far_faces(np.zeros((64, 64, 3), np.uint8))
    segment_person(np.zeros((64, 64, 3), np.uint8))


def far_faces(img: UInt8Array) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of faces MediaPipe's full-range detector sees (the model for faces up to
    5 m away, shipped in the same wheel): small faces in a large photo, which the face mesh's own
    short-range detector misses. Thread-safe (the face mesh's lock)."""
    h, w = img.shape[:2]
    found = _process(-2, lambda mp: mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5), img).detections or []
    boxes = []
    for d in found:
        b = d.location_data.relative_bounding_box
        boxes.append((int(b.xmin * w), int(b.ymin * h), int((b.xmin + b.width) * w), int((b.ymin + b.height) * h)))
    return boxes


def find_faces(img: UInt8Array) -> list[np.ndarray]:
    """`detect_faces`, plus a second look where MediaPipe's detector cannot see. It looks at the image
    at 128x128, so in a wide picture or a group it misses faces: a wide or tall image is searched again
    in overlapping square windows along its long side; if the faces found are small for the image (or
    none), in half-size windows too, and in a window 2.5 times the size of each face the full-range
    detector sees (`far_faces`: a person at a lectern in a large photo); and each strip beside the
    largest face wide enough to hold another face of that size is searched on its own (no extra pass
    for an ordinary head-and-shoulders portrait)."""
    faces = detect_faces(img)
    h, w = img.shape[:2]
    side = min(h, w)
    if max(h, w) > 1.4 * side:
        _search(img, faces, _windows(w, h, side))
    if not faces or max(face_size(f) for f in faces) < 0.2 * side:
        _search(img, faces, _windows(w, h, side // 2))
        _search(img, faces, [_window_around(box, w, h) for box in far_faces(img)])
    if faces:
        f = max(faces, key=face_size)
        fx0, fy0, fx1, fy1 = _box(f)
        size = max(fx1 - fx0, fy1 - fy0)
        pad = 0.25 * size
        strips = []
        for x0, y0, x1, y1 in ((0, 0, int(fx0 - pad), h), (int(fx1 + pad), 0, w, h),
                               (0, 0, w, int(fy0 - pad)), (0, int(fy1 + pad), w, h)):
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if min(x1 - x0, y1 - y0) >= 1.1 * size:
                strips.append((x0, y0, x1, y1))
        _search(img, faces, strips)
    faces.sort(key=lambda q: -(np.ptp(q[:, 0]) * np.ptp(q[:, 1])))
    return faces


def _search(img: UInt8Array, faces: list[np.ndarray], windows: list[tuple[int, int, int, int]]) -> None:
    """Detect in each window; add the faces not seen before, not cut by the window's inner edges and
    found again in a window of their own (`_confirmed`)."""
    h, w = img.shape[:2]
    for x0, y0, x1, y1 in windows:
        for g in detect_faces(np.ascontiguousarray(img[y0:y1, x0:x1])):
            g = g.copy()
            g[:, 0] += x0
            g[:, 1] += y0
            gx0, gy0, gx1, gy1 = _box(g)
            cut = (gx0 < x0 + 2 and x0 > 0) or (gx1 > x1 - 2 and x1 < w) or (gy0 < y0 + 2 and y0 > 0) or (
                gy1 > y1 - 2 and y1 < h)
            if not cut and all(box_overlap(g, o) < 0.2 for o in faces) and _confirmed(img, g):
                faces.append(g)


def _confirmed(img: UInt8Array, g: np.ndarray) -> bool:
    """Whether the face mesh finds face `g` again in a square 2.5 times its size around it: a real face
    is found at any framing; what one window's framing made look like a face (a hand with a tattoo in
    a group photo) is not."""
    X0, Y0, X1, Y1 = _window_around(_box(g), img.shape[1], img.shape[0])
    for f in detect_faces(np.ascontiguousarray(img[Y0:Y1, X0:X1])):
        f = f.copy()
        f[:, 0] += X0
        f[:, 1] += Y0
        if box_overlap(g, f) > 0.5:
            return True
    return False


def _window_around(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    """A square 2.5 times a face box's larger side around its centre, within a w x h image."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.25 * max(x1 - x0, y1 - y0)
    return max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half)), min(h, int(cy + half))


def _box(f: np.ndarray) -> tuple[float, float, float, float]:
    return float(f[:, 0].min()), float(f[:, 1].min()), float(f[:, 0].max()), float(f[:, 1].max())


def head_box(f: np.ndarray) -> tuple[float, float, float, float]:
    """A face's head with its hair (the landmark box widened a third each side, raised half its height)."""
    x0, y0, x1, y1 = _box(f)
    w, h = x1 - x0, y1 - y0
    return x0 - 0.33 * w, y0 - 0.5 * h, x1 + 0.33 * w, y1 + 0.1 * h


def box_overlap(f: np.ndarray, box: np.ndarray | tuple[float, float, float, float]) -> float:
    """The fraction of face `f`'s landmark box inside `box` (another face's landmarks, or x0, y0, x1, y1)."""
    fx0, fy0, fx1, fy1 = _box(f)
    x0, y0, x1, y1 = _box(box) if isinstance(box, np.ndarray) else box
    iw = max(0.0, min(x1, fx1) - max(x0, fx0))
    ih = max(0.0, min(y1, fy1) - max(y0, fy0))
    return iw * ih / max((fx1 - fx0) * (fy1 - fy0), 1e-6)


def _windows(w: int, h: int, side: int) -> list[tuple[int, int, int, int]]:
    """Square windows of `side` px overlapping by half, covering a w x h image (none if too small)."""
    if side < 96:
        return []

    def starts(n: int) -> list[int]:
        k = max(1, int(np.ceil((n - side) / (side / 2))) + 1)
        return sorted({round(i * (n - side) / max(1, k - 1)) for i in range(k)}) if n > side else [0]

    return [(x, y, min(w, x + side), min(h, y + side)) for y in starts(h) for x in starts(w)]


def face_size(lm: np.ndarray) -> float:
    """Face height (forehead to chin) in pixels: unlike the eye distance, barely changed by a turn."""
    return float(np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2]))


def refine_landmarks(img: UInt8Array, lm: np.ndarray) -> np.ndarray:
    """A small face's landmarks read again from its own window (2.5 times its size), enlarged to
    REFINE_SIDE px (bicubic): found in a whole photo or a wide window, a face of a few dozen pixels is
    boxed loosely by the detector and its landmarks land off (the whole Einstein photo, 24 px between
    the eyes: his open mouth read closed, 0.06 eye distances apart, where the second look reads 0.21
    and dlib's 68 points 0.21). `lm` itself when the face is large enough or not found again."""
    bx0, by0, bx1, by1 = _box(lm)
    if 2.5 * max(bx1 - bx0, by1 - by0) >= REFINE_SIDE:  # by the face's size, not its photo's (a close-up)
        return lm
    x0, y0, x1, y1 = _window_around((bx0, by0, bx1, by1), img.shape[1], img.shape[0])
    k = REFINE_SIDE / max(x1 - x0, y1 - y0, 1)
    import cv2

    window = cv2.resize(np.ascontiguousarray(img[y0:y1, x0:x1]), None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    for f in detect_faces(np.asarray(window, np.uint8)):
        g = f.copy()
        g[:, :2] = g[:, :2] / k + (x0, y0)
        g[:, 2] /= k
        if box_overlap(g, lm) > 0.6 and box_overlap(lm, g) > 0.6:
            return g
    return lm

