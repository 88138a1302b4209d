"""Reference portrait: load, validate, find the face and its dense landmarks, frame it, cache it.

Landmarks come from MediaPipe face mesh (`mediapipe==0.10.21`, the last release that ships its
face-mesh models; installed with `--no-deps` because it declares numpy<2 / protobuf<5 but runs
with numpy 2 and protobuf 6). 478 landmarks with iris refinement, fully offline.

Every problem with the input raises `PortraitError` naming it: missing file, not an image, corrupt
data, no face, several faces when refused, a face too small, a face in profile.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flowact.errors import PortraitError
from flowact.types import UInt8Array

__all__ = ["PortraitAnalysis", "analyze_portrait", "detect_faces", "find_faces", "load_image", "warm_up"]

log = logging.getLogger("flowact.reference")

MAX_SIDE = 2048  # larger images are downscaled before analysis
MAX_PIXELS = 50_000_000  # larger portraits are refused from their header (decompression bombs, memory)
MIN_FACE_PX = 64  # eye-to-eye distance * 2.5 must reach this (in the source image)
MAX_PROFILE_RATIO = 0.55  # nose offset from the eyes' midpoint / half eye distance
CACHE_VERSION = 2
_MESH_LOCK = threading.Lock()
_MESHES: dict[int, Any] = {}  # max_faces -> mediapipe FaceMesh (static-image mode: no state between images)

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


def detect_faces(img: UInt8Array, max_faces: int = 4) -> list[np.ndarray]:
    """All faces' landmarks (478, 3) in pixels (z scaled like x), largest first. Thread-safe (one lock)."""
    h, w = img.shape[:2]
    with _MESH_LOCK, _quiet_native_stderr():
        mesh = _MESHES.get(max_faces)
        if mesh is None:  # built once per process (loading the graph costs ~0.5 s; reuse is ~10x cheaper)
            mp = _import_mediapipe()
            mesh = _MESHES[max_faces] = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True, min_detection_confidence=0.5
            )
        result = mesh.process(np.ascontiguousarray(img))
    faces = []
    for lm in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark], dtype=np.float32)
        faces.append(pts)
    faces.sort(key=lambda f: -(np.ptp(f[:, 0]) * np.ptp(f[:, 1])))
    return faces


def warm_up() -> None:
    """Load MediaPipe's face-mesh graph now (about 0.3 s import + 0.6 s graph on this CPU, once per
    process), so the first new portrait of a long-running process is analysed in ~0.1 s."""
    detect_faces(np.zeros((64, 64, 3), np.uint8))


def find_faces(img: UInt8Array) -> list[np.ndarray]:
    """`detect_faces`, plus a second look beside the largest face. MediaPipe's short-range detector
    sees the image at 128x128, so in a wide picture of two people it finds only one; each strip
    left/right/above/below the found face that is wide enough to hold another face of that size is
    searched on its own (no extra pass for an ordinary head-and-shoulders portrait)."""
    faces = detect_faces(img)
    if not faces:
        return faces
    h, w = img.shape[:2]
    f = faces[0]
    fx0, fy0 = float(f[:, 0].min()), float(f[:, 1].min())
    fx1, fy1 = float(f[:, 0].max()), float(f[:, 1].max())
    size = max(fx1 - fx0, fy1 - fy0)
    pad = 0.25 * size
    strips = [
        (0, 0, int(fx0 - pad), h), (int(fx1 + pad), 0, w, h),
        (0, 0, w, int(fy0 - pad)), (0, int(fy1 + pad), w, h),
    ]
    for x0, y0, x1, y1 in strips:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if min(x1 - x0, y1 - y0) < 1.1 * size:
            continue
        for g in detect_faces(np.ascontiguousarray(img[y0:y1, x0:x1])):
            g = g.copy()
            g[:, 0] += x0
            g[:, 1] += y0
            cx, cy = float(g[:, 0].mean()), float(g[:, 1].mean())
            if not any(o[:, 0].min() <= cx <= o[:, 0].max() and o[:, 1].min() <= cy <= o[:, 1].max() for o in faces):
                faces.append(g)
    faces.sort(key=lambda q: -(np.ptp(q[:, 0]) * np.ptp(q[:, 1])))
    return faces


def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[list(LEFT_EYE), :2].mean(axis=0), lm[list(RIGHT_EYE), :2].mean(axis=0)


def _check_face(lm: np.ndarray, name: str) -> float:
    le, re = _eye_centres(lm)
    eye_d = float(np.linalg.norm(re - le))
    if eye_d * 2.5 < MIN_FACE_PX:
        raise PortraitError(f"{name}: the face is too small ({eye_d:.0f} px between the eyes; need >= "
                            f"{MIN_FACE_PX / 2.5:.0f}); use a closer or larger portrait")
    mid = (le + re) / 2
    offset = abs(float(lm[NOSE_TIP, 0] - mid[0])) / (eye_d / 2)
    if offset > MAX_PROFILE_RATIO:
        raise PortraitError(f"{name}: the face is turned too far to the side (profile); use a frontal portrait")
    return eye_d


def _framing(lm: np.ndarray, eye_d: float, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine (similarity) taking source pixels to the output frame: eyes level, face sized."""
    le, re = _eye_centres(lm)
    angle = float(np.arctan2(re[1] - le[1], re[0] - le[0]))
    face_h = float(np.linalg.norm(lm[CHIN, :2] - lm[FOREHEAD, :2]))
    scale = 0.42 * out_h / max(face_h, 1.0)
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    centre = (le + re) / 2
    target = np.array([out_w / 2, 0.40 * out_h])
    rot = np.array([[c, -s], [s, c]])
    t = target - rot @ centre
    return np.hstack([rot, t[:, None]]).astype(np.float32)


def analyze_portrait(
    source: str | Path | bytes | np.ndarray,
    *,
    width: int = 854,
    height: int = 480,
    on_multiple_faces: Literal["largest", "refuse"] = "largest",
    cache_dir: str | Path | None = None,
) -> PortraitAnalysis:
    """Load, validate and frame a portrait; results are cached on disk by image hash + size."""
    import cv2

    name = str(source) if isinstance(source, str | Path) else "<portrait>"
    img = load_image(source)
    digest = hashlib.sha256(img.tobytes() + str(img.shape).encode()).hexdigest()[:24]
    key = f"v{CACHE_VERSION}-{digest}-{width}x{height}"
    cache = Path(cache_dir).expanduser() if cache_dir else None
    if cache is not None:
        hit = cache / f"{key}.npz"
        if hit.is_file():
            try:
                return _load_cached(hit, digest)
            except (OSError, ValueError, KeyError) as e:
                log.warning("ignoring unreadable cache entry %s: %s", hit, e)
    img = _downscale(img)
    faces = find_faces(img)
    if not faces:
        raise PortraitError(f"{name}: no face found in the portrait (need one frontal face with at least "
                            f"{MIN_FACE_PX / 2.5:.0f} px between the eyes)")
    if len(faces) > 1:
        if on_multiple_faces == "refuse":
            raise PortraitError(f"{name}: {len(faces)} faces found; use a portrait with one person")
        log.warning("%s: %d faces found, using the largest", name, len(faces))
    lm = faces[0]
    eye_d = _check_face(lm, name)
    m = _framing(lm, eye_d, width, height)
    framed = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    pts = np.empty_like(lm)
    pts[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    pts[:, 2] = lm[:, 2] * scale
    result = _make_analysis(np.ascontiguousarray(framed), pts, len(faces), digest)
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f"{key}.tmp.npz"
            np.savez(tmp, image=result.image, landmarks=result.landmarks, faces=np.array(len(faces)))
            tmp.replace(cache / f"{key}.npz")
        except OSError as e:
            log.warning("cannot write portrait cache in %s: %s", cache, e)
    return result


def _make_analysis(image: UInt8Array, pts: np.ndarray, faces: int, digest: str) -> PortraitAnalysis:
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
        mouth_box=mouth, eye_distance=eye_d, faces_found=faces, source_hash=digest,
    )


def _load_cached(path: Path, digest: str) -> PortraitAnalysis:
    with np.load(path) as z:
        return _make_analysis(z["image"], z["landmarks"], int(z["faces"]), digest)
