"""Reference portrait: load, validate, find the face and its dense landmarks, frame it, cache it.

Landmarks come from MediaPipe face mesh (`mediapipe==0.10.21`, the last release that ships its
face-mesh models; installed with `--no-deps` because it declares numpy<2 / protobuf<5 but runs
with numpy 2 and protobuf 6). 478 landmarks with iris refinement, fully offline.

Every problem with the input raises `PortraitError` naming it: missing file, not an image, corrupt
data, no face, several faces of comparable size (listed, so the user can choose one), a face too small,
a head turned or tilted too far (with the measured angle and the limit).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flowact.errors import PortraitError
from flowact.framing import Framing, FramingMode, frame_portrait, plan_framing
from flowact.types import UInt8Array

__all__ = [
    "FaceChoice", "PortraitAnalysis", "analyze_portrait", "detect_faces", "face_pose", "face_roll", "find_faces",
    "load_image", "segment_person", "warm_up",
]

log = logging.getLogger("flowact.reference")

MAX_SIDE = 2048  # larger images are downscaled before analysis
MAX_PIXELS = 50_000_000  # larger portraits are refused from their header (decompression bombs, memory)
MIN_FACE_PX = 64  # eye-to-eye distance * 2.5 must reach this (in the source image)
MAX_YAW = 35.0  # degrees a head may be turned to the side
MAX_PITCH = 25.0  # degrees a head may be tilted up or down (beyond the usual slight downward look)
PITCH_BASELINE = 8.0  # MediaPipe's forehead-chin depth angle of a face looking straight at the camera
COMPARABLE = 0.7  # another face at least this fraction of the largest face's size is "comparable"
KEEP_ROLL = 10.0  # degrees of head tilt a photo keeps: it is rotated only by the tilt beyond this
CACHE_VERSION = 6
FaceChoice = int | tuple[float, float, float, float] | None  # index (left to right) or box in photo pixels
_MESH_LOCK = threading.Lock()
_MESHES: dict[int, Any] = {}  # max_faces -> FaceMesh (static images); -1 SelfieSegmentation; -2 FaceDetection

# MediaPipe face-mesh landmark indices used here.
LEFT_EYE = (33, 133)
RIGHT_EYE = (362, 263)
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
LIPS = (61, 291, 0, 17, 13, 14, 78, 308)


@dataclass(frozen=True, slots=True)
class PortraitAnalysis:
    """A portrait framed for the output size, with its landmarks in output pixel coordinates."""

    image: UInt8Array  # (H, W, 3) RGB, framed
    landmarks: np.ndarray  # (478, 3) float32: x, y pixels; z relative depth in pixels
    face_box: tuple[float, float, float, float]  # x0, y0, x1, y1
    mouth_box: tuple[float, float, float, float]
    eye_distance: float  # pixels between the eye centres (the face scale)
    faces_found: int
    source_hash: str
    person: np.ndarray | None = None  # (H, W) uint8 0..255: where the person is (selfie segmentation), if known

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def load_image(source: str | Path | bytes | np.ndarray) -> UInt8Array:
    """Decode any common image (JPEG, PNG, WebP, GIF first frame; RGB, RGBA, L, CMYK; EXIF)."""
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            raise PortraitError(f"portrait array must be (H, W, 3|4) uint8, got {arr.shape} {arr.dtype}")
        return np.ascontiguousarray(arr[:, :, :3])
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, bytes):
        data, name = source, "<bytes>"
    else:
        p = Path(source)
        if not p.is_file():
            raise PortraitError(f"{p}: portrait file not found")
        data, name = p.read_bytes(), str(p)
    if not data:
        raise PortraitError(f"{name}: the portrait file is empty")
    try:
        with Image.open(io.BytesIO(data)) as f:
            if f.width * f.height > MAX_PIXELS:  # the header alone: refuse before decoding a bomb
                raise PortraitError(f"{name}: image is too large ({f.width}x{f.height}; at most "
                                    f"{MAX_PIXELS // 1_000_000} megapixels: resize it)")
            f.seek(0)  # animated GIF/WebP: the first frame
            im: Image.Image = ImageOps.exif_transpose(f)
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PortraitError(f"{name}: not a readable image ({e.__class__.__name__}: {e})") from e
    if rgb.shape[0] < 32 or rgb.shape[1] < 32:
        raise PortraitError(f"{name}: image is too small ({rgb.shape[1]}x{rgb.shape[0]})")
    return np.ascontiguousarray(rgb)


def _downscale(img: UInt8Array) -> UInt8Array:
    import cv2

    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return img
    log.info("downscaling %dx%d portrait by %.2f", w, h, scale)
    return np.asarray(cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA))


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
    """`import mediapipe`, minus 0.45 s: its package init imports `drawing_utils`, which imports
    matplotlib.pyplot only for a plotting helper we never call. While mediapipe imports, a stand-in
    module that loads the real pyplot on first attribute use sits in sys.modules; it is removed right
    after, so any later `import matplotlib.pyplot` is the real one (and drawing_utils still works)."""
    if "mediapipe" in sys.modules or "matplotlib.pyplot" in sys.modules:
        import mediapipe

        return mediapipe
    import types

    def _real(attr: str) -> Any:
        if sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]
        import matplotlib.pyplot as real

        return getattr(real, attr)

    stand_in = types.ModuleType("matplotlib.pyplot")
    stand_in.__getattr__ = _real  # type: ignore[method-assign]
    sys.modules["matplotlib.pyplot"] = stand_in
    try:
        import mediapipe
    finally:
        if sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]
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
    if not faces or max(_face_size(f) for f in faces) < 0.2 * side:
        _search(img, faces, _windows(w, h, side // 2))
        _search(img, faces, [_window_around(box, w, h) for box in far_faces(img)])
    if faces:
        f = max(faces, key=_face_size)
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
            if not cut and all(_overlap(g, o) < 0.2 for o in faces) and _confirmed(img, g):
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
        if _overlap(g, f) > 0.5:
            return True
    return False


def _window_around(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    """A square 2.5 times a face box's larger side around its centre, within a w x h image."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.25 * max(x1 - x0, y1 - y0)
    return max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half)), min(h, int(cy + half))


def _box(f: np.ndarray) -> tuple[float, float, float, float]:
    return float(f[:, 0].min()), float(f[:, 1].min()), float(f[:, 0].max()), float(f[:, 1].max())


def _head_box(f: np.ndarray) -> tuple[float, float, float, float]:
    """A face's head with its hair (the landmark box widened a third each side, raised half its height)."""
    x0, y0, x1, y1 = _box(f)
    w, h = x1 - x0, y1 - y0
    return x0 - 0.33 * w, y0 - 0.5 * h, x1 + 0.33 * w, y1 + 0.1 * h


def _overlap(f: np.ndarray, box: np.ndarray | tuple[float, float, float, float]) -> float:
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


def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[list(LEFT_EYE), :2].mean(axis=0), lm[list(RIGHT_EYE), :2].mean(axis=0)


def face_roll(lm: np.ndarray) -> float:
    """The head's tilt in degrees: the eye line's angle with the horizontal (+ clockwise on screen,
    the face's right eye lower)."""
    le, re = _eye_centres(lm)
    return float(np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0])))


def face_pose(lm: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) of a face in degrees from its 3D mesh: yaw from the depth slope across four
    symmetric landmark pairs (0 facing the camera, + turned to the viewer's left), pitch from the
    forehead-chin line's depth slope relative to a face looking at the camera (+ looking down)."""
    yaws = []
    for a, b in ((234, 454), (33, 263), (127, 356), (93, 323)):
        d = lm[b] - lm[a]
        yaws.append(float(np.degrees(np.arctan2(d[2], d[0]))))
    d = lm[CHIN] - lm[FOREHEAD]
    pitch = float(np.degrees(np.arctan2(d[2], d[1]))) - PITCH_BASELINE  # chin further back: down
    return float(np.median(yaws)), pitch


def _check_face(lm: np.ndarray, name: str) -> float:
    le, re = _eye_centres(lm)
    eye_d = float(np.linalg.norm(re - le))
    yaw, pitch = face_pose(lm)
    if abs(yaw) > MAX_YAW:
        raise PortraitError(f"{name}: the face is turned {abs(yaw):.0f} degrees to the side (towards profile); "
                            f"the limit is {MAX_YAW:.0f} degrees: use a portrait that faces the camera more")
    if abs(pitch) > MAX_PITCH:
        where = "down" if pitch > 0 else "up"
        raise PortraitError(f"{name}: the face is tilted {abs(pitch):.0f} degrees {where}; the limit is "
                            f"{MAX_PITCH:.0f} degrees: use a portrait at eye level")
    # a turned face's eyes are closer together in the image: judge its size by the frontal equivalent
    frontal_d = eye_d / max(float(np.cos(np.radians(yaw))), 0.5)
    if frontal_d * 2.5 < MIN_FACE_PX:
        raise PortraitError(f"{name}: the face is too small ({frontal_d:.0f} px between the eyes; need >= "
                            f"{MIN_FACE_PX / 2.5:.0f}); use a closer or larger portrait")
    return eye_d


def _face_size(lm: np.ndarray) -> float:
    """Face height (forehead to chin) in pixels: unlike the eye distance, barely changed by a turn."""
    return float(np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2]))


def _choose_face(faces: list[np.ndarray], face: FaceChoice, unscale: float, name: str,
                 on_multiple_faces: Literal["largest", "refuse"]) -> np.ndarray:
    """The face to animate. `faces` are in analysis pixels; `unscale` maps them to the photo's pixels
    (what the user sees and what a box is given in). Faces are numbered left to right."""
    order = sorted(faces, key=lambda f: float(f[:, 0].mean()))
    if face is None:
        if len(faces) == 1:
            return faces[0]
        sizes = [_face_size(f) for f in faces]  # faces[0] is the largest by area
        comparable = [f for f, sz in zip(faces, sizes, strict=True) if sz >= COMPARABLE * max(sizes)]
        if len(comparable) == 1 or on_multiple_faces == "largest":
            log.warning("%s: %d faces found, using the largest", name, len(faces))
            return max(faces, key=_face_size)
        listing = "; ".join(
            f"{i}: centre ({f[:, 0].mean() * unscale:.0f}, {f[:, 1].mean() * unscale:.0f}), "
            f"{_face_size(f) * unscale:.0f} px tall" + (" (comparable)" if any(f is c for c in comparable) else "")
            for i, f in enumerate(order)
        )
        raise PortraitError(f"{name}: {len(faces)} faces found, {len(comparable)} of comparable size; choose "
                            f"one with the generator's `face` setting (index, left to right, or a box "
                            f"[x0, y0, x1, y1] in the photo's pixels): {listing}")
    if isinstance(face, int):
        if not 0 <= face < len(order):
            raise PortraitError(f"{name}: face {face} was chosen but {len(order)} face(s) were found "
                                f"(indices 0..{len(order) - 1}, left to right)")
        return order[face]
    x0, y0, x1, y1 = (float(v) / unscale for v in face)
    if x1 <= x0 or y1 <= y0:
        raise PortraitError(f"{name}: the face box {list(face)} must be [x0, y0, x1, y1] with x1 > x0, y1 > y0")

    def overlap(f: np.ndarray) -> float:
        return _overlap(f, (x0, y0, x1, y1))

    best = max(order, key=overlap)
    if overlap(best) < 0.3:
        raise PortraitError(f"{name}: no face found inside the chosen box {list(face)}")
    return best


def analyze_portrait(
    source: str | Path | bytes | np.ndarray,
    *,
    width: int = 854,
    height: int = 480,
    on_multiple_faces: Literal["largest", "refuse"] = "refuse",
    face: FaceChoice = None,
    framing: FramingMode = "fill",
    isolate: bool = False,
    cache_dir: str | Path | None = None,
) -> PortraitAnalysis:
    """Load, validate and frame a portrait; results are cached on disk by image hash + size + choices.

    Several faces: a clearly dominant one (the others < 70% of its height) is taken; faces of comparable
    size are refused with a list of them unless `face` picks one (index left to right, or a box in the
    photo's pixels) or `on_multiple_faces="largest"`. `framing`: see flowact.framing. `isolate`: frame
    the chosen person alone, the other people's heads left out of the frame or out of focus (a group
    photo's other faces would otherwise stay frozen beside the animated one)."""
    name = str(source) if isinstance(source, str | Path) else "<portrait>"
    img = load_image(source)
    digest = hashlib.sha256(img.tobytes() + str(img.shape).encode()).hexdigest()[:24]
    choice = hashlib.sha256(f"{face}-{on_multiple_faces}-{isolate}".encode()).hexdigest()[:8]
    key = f"v{CACHE_VERSION}-{digest}-{width}x{height}-{framing}-{choice}"
    cache = Path(cache_dir).expanduser() if cache_dir else None
    if cache is not None:
        hit = cache / f"{key}.npz"
        if hit.is_file():
            try:
                return _load_cached(hit, digest)
            except (OSError, ValueError, KeyError) as e:
                log.warning("ignoring unreadable cache entry %s: %s", hit, e)
    full_w = img.shape[1]
    img = _downscale(img)
    faces = find_faces(img)
    if not faces:
        raise PortraitError(f"{name}: no face found in the portrait (need one face towards the camera with at "
                            f"least {MIN_FACE_PX / 2.5:.0f} px between the eyes)")
    lm = _choose_face(faces, face, full_w / img.shape[1], name, on_multiple_faces)
    _check_face(lm, name)
    le, re = _eye_centres(lm)
    # the eyes are levelled where the levelled photo still fills the frame; otherwise the photo stays
    # upright, its head tilted as photographed, up to KEEP_ROLL (a rotated photo that does not reach the
    # frame's edges shows its own edges askew), a stronger tilt levelled down to KEEP_ROLL
    roll = face_roll(lm)
    others = [_head_box(f) for f in faces if f is not lm] if isolate else []

    def turned_back(degrees: float) -> Framing:
        return plan_framing((le + re) / 2, float(np.radians(degrees)), _face_size(lm), img.shape[1], img.shape[0],
                            width, height, framing, avoid=others)

    plan = turned_back(roll)
    if plan.covered < 0.999:
        plan = turned_back(float(np.sign(roll) * max(0.0, abs(roll) - KEEP_ROLL)))
    m = plan.matrix
    framed = frame_portrait(img, plan, width, height, hide=others)
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    pts = np.empty_like(lm)
    pts[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    pts[:, 2] = lm[:, 2] * scale
    person = np.round(segment_person(framed) * 255).astype(np.uint8)  # for the breathing torso (render/body.py)
    result = _make_analysis(framed, pts, len(faces), digest, person)
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f"{key}.tmp.npz"
            np.savez(tmp, image=result.image, landmarks=result.landmarks, faces=np.array(len(faces)), person=person)
            tmp.replace(cache / f"{key}.npz")
        except OSError as e:
            log.warning("cannot write portrait cache in %s: %s", cache, e)
    return result


def _make_analysis(image: UInt8Array, pts: np.ndarray, faces: int, digest: str,
                   person: np.ndarray | None = None) -> PortraitAnalysis:
    le, re = _eye_centres(pts)
    eye_d = float(np.linalg.norm(re - le))
    x0, y0 = pts[:, 0].min(), pts[:, 1].min()
    x1, y1 = pts[:, 0].max(), pts[:, 1].max()
    lips = pts[list(LIPS), :2]
    pad = 0.25 * eye_d
    mouth = (float(lips[:, 0].min() - pad), float(lips[:, 1].min() - pad),
             float(lips[:, 0].max() + pad), float(lips[:, 1].max() + pad + 0.2 * eye_d))
    return PortraitAnalysis(
        image=image, landmarks=pts.astype(np.float32), face_box=(float(x0), float(y0), float(x1), float(y1)),
        mouth_box=mouth, eye_distance=eye_d, faces_found=faces, source_hash=digest, person=person,
    )


def _load_cached(path: Path, digest: str) -> PortraitAnalysis:
    with np.load(path) as z:
        return _make_analysis(z["image"], z["landmarks"], int(z["faces"]), digest, z["person"])
