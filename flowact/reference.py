"""Reference portrait: load, validate, find the face and its dense landmarks, frame it, cache it.

Faces and their 478 landmarks come from MediaPipe's face mesh (flowact/faces.py).

Every problem with the input raises `PortraitError` naming it: missing file, not an image, corrupt
data, no face, several faces of comparable size (listed, so the user can choose one), a face too small,
a head turned or tilted too far (with the measured angle and the limit).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from flowact.errors import PortraitError
from flowact.faces import (
    CHIN,
    FOREHEAD,
    LEFT_EYE,
    LIPS,
    RIGHT_EYE,
    box_overlap,
    face_size,
    find_faces,
    head_box,
    refine_landmarks,
    segment_person,
)
from flowact.framing import Framing, FramingMode, frame_portrait, photo_alpha, plan_framing
from flowact.types import UInt8Array

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "PORTRAIT_SUFFIXES", "FaceChoice", "PortraitAnalysis", "analyze_portrait", "face_pose", "face_roll", "load_image",
]

log = logging.getLogger("flowact.reference")

MAX_SIDE = 2048  # larger images are downscaled before analysis
MAX_PIXELS = 50_000_000  # larger portraits are refused from their header (decompression bombs, memory)
MIN_FACE_PX = 64  # eye-to-eye distance * 2.5 must reach this (in the source image)
MAX_YAW = 35.0  # degrees a head may be turned to the side
MAX_PITCH = 25.0  # degrees a head may be tilted up or down (beyond the usual slight downward look)
PITCH_BASELINE = 8.0  # MediaPipe's forehead-chin depth angle of a face looking straight at the camera
COMPARABLE = 0.7  # another face at least this fraction of the largest face's size is "comparable"
KEEP_ROLL = 15.0  # degrees of head tilt a photo keeps: it is rotated only by the tilt beyond this
# (the rig, the lids and the mouth interior work in the face's own frame; at 20, two group crops tilted
# 29-32 degrees lost their lip sync as dlib reads it, 0.66 -> 0.25 and 0.73 -> 0.64; at 15, 0.57 and 0.70)
CACHE_VERSION = 9
FaceChoice = int | tuple[float, float, float, float] | None  # index (left to right) or box in photo pixels


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
    # (H, W) uint8 0..255: where the frame shows the photo itself, its feathered edge, and 0 over the fill
    # around a photo that does not cover the frame; None when it does (the renderer keeps what it moves
    # inside the photo: a chin dropping at a tight crop's edge is cut by it, not dragged into the fill)
    photo: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


def load_image(source: str | Path | bytes | np.ndarray) -> UInt8Array:
    """Decode any common image (JPEG, PNG, WebP, GIF first frame, TIFF, AVIF, HEIC; RGB, RGBA, L, CMYK,
    16-bit and float grey; EXIF orientation)."""
    return _decode(source)[0]


def _decode(source: str | Path | bytes | np.ndarray, max_side: int | None = None) -> tuple[UInt8Array, float]:
    """`load_image`, and the photo's pixels per decoded pixel. With `max_side`, a larger JPEG is decoded
    at the smallest of 1/2, 1/4, 1/8 of its size that keeps at least `max_side` on its long side (the
    decoder's own scaling: a 48-megapixel phone photo took 1.1-1.7 s and 146 MB to decode in full, to be
    downscaled to MAX_SIDE right after); the caller still resizes to `max_side`."""
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            raise PortraitError(f"portrait array must be (H, W, 3|4) uint8, got {arr.shape} {arr.dtype}")
        return np.ascontiguousarray(arr[:, :, :3]), 1.0
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
    _known_format(data, name)
    try:
        with Image.open(io.BytesIO(data)) as f:
            if f.width * f.height > MAX_PIXELS:  # the header alone: refuse before decoding a bomb
                raise PortraitError(f"{name}: image is too large ({f.width}x{f.height}; at most "
                                    f"{MAX_PIXELS // 1_000_000} megapixels: resize it)")
            f.seek(0)  # animated GIF/WebP: the first frame
            photo_w = f.width
            if max_side is not None and f.format == "JPEG" and max(f.size) > 2 * max_side:
                k = max_side / max(f.size)
                f.draft(f.mode, (int(np.ceil(f.width * k)), int(np.ceil(f.height * k))))
            scale = photo_w / f.width
            im: Image.Image = ImageOps.exif_transpose(f)
            if im.mode.startswith(("I", "F")):  # 16-bit or 32-bit grey (scans, PNG exports, TIFF)
                im = _grey_to_8bit(im)
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as e:
        raise PortraitError(f"{name}: not a readable image (not a format this reads: JPEG, PNG, WebP, GIF, "
                            "TIFF, BMP, AVIF, HEIC)") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise PortraitError(f"{name}: not a readable image ({e.__class__.__name__}: {e})") from e
    if rgb.shape[0] < 32 or rgb.shape[1] < 32:
        raise PortraitError(f"{name}: image is too small ({rgb.shape[1]}x{rgb.shape[0]})")
    return np.ascontiguousarray(rgb), scale


# the file names a portrait folder offers (what `load_image` reads)
PORTRAIT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".gif", ".tif", ".tiff", ".bmp")
# ISO base media brands of HEIF still images (an iPhone's photos: HEIC)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


def _known_format(data: bytes, name: str) -> None:
    """Recognise what Pillow alone cannot open: a HEIC photo opens through pillow-heif (registered on
    first use; a clear error when it is not installed), a PDF or SVG is named as such."""
    head = data[:256].lstrip()
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        try:
            _register_heif()
        except ImportError as e:
            raise PortraitError(f"{name}: a HEIC/HEIF photo needs pillow-heif (pip install "
                                "'flowact-agent[heic]'), or save it as JPEG or PNG") from e
    elif head.startswith(b"%PDF"):
        raise PortraitError(f"{name}: this is a PDF, not a photo: export the portrait as JPEG or PNG")
    elif head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048]):
        raise PortraitError(f"{name}: this is an SVG drawing, not a photo: export the portrait as JPEG or PNG")


@functools.cache
def _register_heif() -> None:
    """Pillow opens HEIF once pillow-heif's opener is registered (once per process)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _grey_to_8bit(im: Image.Image) -> Image.Image:
    """A high-bit-depth grey image ("I;16*", "I", "F") as 8-bit "L", scaled by its format's range. PIL's
    own convert clips every value above 255 to white: a 16-bit scan became a blank page ("no face")."""
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        top = 65535.0
    else:  # "I" / "F": the range the values use (a float image in 0..1, 8- or 16-bit data widened)
        hi = float(np.nanmax(a)) if a.size else 0.0
        top = next((t for t in (1.0, 255.0, 65535.0) if hi <= t), hi)
    return Image.fromarray(np.clip(np.nan_to_num(a) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))


def _downscale(img: UInt8Array) -> UInt8Array:
    import cv2

    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return img
    log.info("downscaling %dx%d portrait by %.2f", w, h, scale)
    return np.asarray(cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA))


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


def _choose_face(faces: list[np.ndarray], face: FaceChoice, unscale: float, name: str,
                 on_multiple_faces: Literal["largest", "refuse"]) -> np.ndarray:
    """The face to animate. `faces` are in analysis pixels; `unscale` maps them to the photo's pixels
    (what the user sees and what a box is given in). Faces are numbered left to right."""
    order = sorted(faces, key=lambda f: float(f[:, 0].mean()))
    if face is None:
        if len(faces) == 1:
            return faces[0]
        sizes = [face_size(f) for f in faces]  # faces[0] is the largest by area
        comparable = [f for f, sz in zip(faces, sizes, strict=True) if sz >= COMPARABLE * max(sizes)]
        if len(comparable) == 1 or on_multiple_faces == "largest":
            log.warning("%s: %d faces found, using the largest", name, len(faces))
            return max(faces, key=face_size)
        listing = "; ".join(
            f"{i}: centre ({f[:, 0].mean() * unscale:.0f}, {f[:, 1].mean() * unscale:.0f}), "
            f"{face_size(f) * unscale:.0f} px tall" + (" (comparable)" if any(f is c for c in comparable) else "")
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
        return box_overlap(f, (x0, y0, x1, y1))

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
    img, photo_scale = _decode(source, MAX_SIDE)
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
    full_w = img.shape[1] * photo_scale
    img = _downscale(img)
    faces = find_faces(img)
    if not faces:
        raise PortraitError(f"{name}: no face found in the portrait (need one face towards the camera with at "
                            f"least {MIN_FACE_PX / 2.5:.0f} px between the eyes)")
    chosen = _choose_face(faces, face, full_w / img.shape[1], name, on_multiple_faces)
    # a small face's landmarks are read again from its own enlarged window; what is accepted stays as the
    # first reading judged it (at a few dozen pixels the mesh's depth, and so its pitch, moves by a few
    # degrees either way between readings: the whole Einstein photo reads 22.6 degrees up, then 26.8;
    # his larger crop 22)
    _check_face(chosen, name)
    lm = refine_landmarks(img, chosen)
    le, re = _eye_centres(lm)
    # the eyes are levelled where the levelled photo still fills the frame; otherwise the photo stays
    # upright, its head tilted as photographed, up to KEEP_ROLL (a rotated photo that does not reach the
    # frame's edges shows its own edges askew), a stronger tilt levelled down to KEEP_ROLL
    roll = face_roll(lm)
    others = [head_box(f) for f in faces if f is not chosen] if isolate else []

    def turned_back(degrees: float) -> Framing:
        return plan_framing((le + re) / 2, float(np.radians(degrees)), face_size(lm), img.shape[1], img.shape[0],
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
    alpha = photo_alpha(plan, img.shape[1], img.shape[0], width, height)
    photo = None if alpha is None else np.round(alpha * 255).astype(np.uint8)
    result = _make_analysis(framed, pts, len(faces), digest, person, photo)
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f"{key}.tmp.npz"
            np.savez(tmp, image=result.image, landmarks=result.landmarks, faces=np.array(len(faces)), person=person,
                     photo=np.zeros(0, np.uint8) if photo is None else photo)
            tmp.replace(cache / f"{key}.npz")
        except OSError as e:
            log.warning("cannot write portrait cache in %s: %s", cache, e)
    return result


def _make_analysis(image: UInt8Array, pts: np.ndarray, faces: int, digest: str,
                   person: np.ndarray | None = None, photo: np.ndarray | None = None) -> PortraitAnalysis:
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
        photo=photo,
    )


def _load_cached(path: Path, digest: str) -> PortraitAnalysis:
    with np.load(path) as z:
        photo = z["photo"]
        return _make_analysis(z["image"], z["landmarks"], int(z["faces"]), digest, z["person"],
                              photo if photo.size else None)
