"""Framing a portrait into the output frame without streaks.

A similarity transform puts the face at a standard size and place (eye midpoint at (W/2, 0.40 H),
forehead-to-chin 0.42 H), turned back by `angle` (the eye line's angle levels the eyes; flowact.reference
passes only the tilt beyond KEEP_ROLL, so most photos stay upright with their head's own tilt). Where
the photo does not reach a frame edge, the modes differ:

- `fill` (default): first crop around the person where the photo allows (zoom the face up to 1.25x
  and move it off-centre by a little; if even that cannot cover the frame, no zoom at all); whatever
  is still uncovered is filled with a blurred, darkened extension of the photo's own border (its mirror
  image, heavily blurred, fading darker towards the frame edge), feathered into the photo. It reads as
  a soft backdrop, never as stretched edge pixels.
- `crop`: always cover the whole frame with the photo (zoom in as far as needed; the face may become
  larger than the standard size and move off-centre).
- `fit`: show the whole photo inside the frame (no crop, face smaller if need be), the rest filled as in
  `fill`. (An output whose size follows the portrait is a session setting: choose width/height with
  the photo's aspect ratio and every mode shows it edge to edge.)

Isolating one person of a group photo (`avoid`/`hide`: the other people's heads, source boxes): `fill`
and `crop` then zoom the face up to ISOLATE_ZOOM and move it sideways up to ISOLATE_SHIFT to leave
those heads out of the frame (the least zoom that does), and the heads still in view are blurred out
of focus, feathered, like a portrait lens's background, so no frozen face stares beside the animated one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from flowact.types import UInt8Array

__all__ = ["Framing", "FramingMode", "frame_portrait", "photo_alpha", "plan_framing"]

FramingMode = Literal["fill", "crop", "fit"]
FACE_HEIGHT = 0.42  # forehead-to-chin, fraction of the output height
EYE_Y = 0.40  # eye midpoint height, fraction of the output height
MAX_ZOOM = 1.25  # `fill` may enlarge the face this much to avoid a fill
SHIFT_X, SHIFT_UP, SHIFT_DOWN = 0.10, 0.06, 0.04  # how far `fill` may move the eyes (fractions of W / H)
ISOLATE_ZOOM, ISOLATE_SHIFT = 1.5, 0.22  # how far isolating one person may zoom and move the eyes sideways
INTRUDES = 0.08  # another head showing more than this fraction of its box in the frame is "in view"
Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True, slots=True)
class Framing:
    matrix: np.ndarray  # (2, 3) float32 source pixels -> output pixels
    covered: float  # fraction of the output frame that shows the photo itself


def _cover_box(scale: float, cos: float, sin: float, w: int, h: int, out_w: int, out_h: int
               ) -> tuple[float, float, float, float]:
    """Where the output frame's centre may lie in source pixels for the photo to cover the frame:
    the frame, rotated and scaled back into the source, has a bounding box that must fit the photo.
    Returns (x_lo, x_hi, y_lo, y_hi); lo > hi when impossible."""
    bw = (out_w * abs(cos) + out_h * abs(sin)) / scale
    bh = (out_w * abs(sin) + out_h * abs(cos)) / scale
    return bw / 2, (w - 1) - bw / 2, bh / 2, (h - 1) - bh / 2


def _placed(m: np.ndarray, box: Box) -> Box:
    """A source box's bounding box in the output, through the similarity `m`."""
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64) @ np.asarray(m[:, :2], np.float64).T + m[:, 2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def in_view(m: np.ndarray, box: Box, out_w: int, out_h: int) -> float:
    """The fraction of a source box that the output frame shows, through the similarity `m`."""
    x0, y0, x1, y1 = _placed(m, box)
    area = max((x1 - x0) * (y1 - y0), 1e-6)
    iw = max(0.0, min(x1, out_w) - max(x0, 0.0))
    ih = max(0.0, min(y1, out_h) - max(y0, 0.0))
    return iw * ih / area


def plan_framing(centre: np.ndarray, angle: float, face_h: float, src_w: int, src_h: int,
                 out_w: int, out_h: int, mode: FramingMode = "fill", avoid: Sequence[Box] = ()) -> Framing:
    """The source -> output similarity for a face whose eye midpoint is `centre` (source pixels), whose
    eye line is to turn back by `angle` radians (its angle with the horizontal levels it) and whose
    forehead-to-chin length is `face_h`.
    `avoid`: other people's heads (source boxes) to leave out of the frame where zooming and moving
    the face sideways within the isolating limits can (not in `fit`, which shows the whole photo)."""
    cos, sin = float(np.cos(-angle)), float(np.sin(-angle))
    rot = np.array([[cos, -sin], [sin, cos]])
    s0 = FACE_HEIGHT * out_h / max(face_h, 1.0)
    target = np.array([out_w / 2, EYE_Y * out_h])
    frame_c = np.array([out_w / 2, out_h / 2])

    def centre_for(scale: float, eyes_at: np.ndarray) -> np.ndarray:  # frame centre in source pixels
        return np.asarray(centre + rot.T @ (frame_c - eyes_at) / scale)

    def eyes_for(scale: float, fc: np.ndarray) -> np.ndarray:  # inverse of centre_for
        return np.asarray(frame_c - scale * rot @ (fc - centre))

    def covering(scale: float, fc: np.ndarray, otherwise: np.ndarray) -> tuple[np.ndarray, bool]:
        """The frame centre `fc` moved as little as covering the frame with the photo needs; on an axis
        where the photo cannot cover it, `otherwise`'s coordinate; whether it covers."""
        x_lo, x_hi, y_lo, y_hi = _cover_box(scale, cos, sin, src_w, src_h, out_w, out_h)
        return (np.array([np.clip(fc[0], x_lo, x_hi) if x_lo <= x_hi else otherwise[0],
                          np.clip(fc[1], y_lo, y_hi) if y_lo <= y_hi else otherwise[1]]),
                x_lo <= x_hi and y_lo <= y_hi)

    def clamp(scale: float, limit_shift: bool) -> tuple[np.ndarray, bool]:
        """The frame centre nearest the standard placement that covers the frame (and, with
        limit_shift, keeps the eyes within the allowed shift); whether it covers."""
        fc, ok = covering(scale, centre_for(scale, target), np.array([(src_w - 1) / 2, (src_h - 1) / 2]))
        if limit_shift:
            eyes = eyes_for(scale, fc)
            lo = target - (SHIFT_X * out_w, SHIFT_UP * out_h)
            hi = target + (SHIFT_X * out_w, SHIFT_DOWN * out_h)
            kept = np.clip(eyes, lo, hi)
            ok = ok and bool(np.allclose(kept, eyes, atol=0.5))
            fc = centre_for(scale, kept)
        return fc, ok

    if mode == "fit":
        bw, bh = src_w * abs(cos) + src_h * abs(sin), src_w * abs(sin) + src_h * abs(cos)
        scale = min(s0, (out_w - 1) / bw, (out_h - 1) / bh)
        # keep the whole photo in view: shift the eyes until its rotated corners are inside the frame
        corners = np.array([[0, 0], [src_w - 1, 0], [0, src_h - 1], [src_w - 1, src_h - 1]], np.float64)
        placed = (corners - centre) @ (scale * rot).T + target
        lo, hi = placed.min(axis=0), placed.max(axis=0)
        shift = np.maximum(0.0, -lo) - np.maximum(0.0, hi - (out_w - 1, out_h - 1))
        fc = centre_for(scale, target + shift)
    elif mode == "crop":
        need = max((out_w * abs(cos) + out_h * abs(sin)) / (src_w - 1),
                   (out_w * abs(sin) + out_h * abs(cos)) / (src_h - 1))
        scale = max(s0, need * 1.0005)
        fc, _ = clamp(scale, limit_shift=False)
    else:
        scale = s0
        for z in np.linspace(1.0, MAX_ZOOM, 11):  # the least zoom that covers with an allowed shift
            if clamp(s0 * float(z), limit_shift=True)[1]:
                scale = s0 * float(z)
                break
        # else: no zoom (a part zoom would cost headroom and barely narrow the fill)
        fc, _ = clamp(scale, limit_shift=True)
    def matrix(scale: float, fc: np.ndarray) -> np.ndarray:
        t = eyes_for(scale, fc) - scale * rot @ centre
        return np.hstack([scale * rot, t[:, None]]).astype(np.float32)

    def placed_at(scale: float, eyes: np.ndarray) -> np.ndarray:
        """The eyes placed at `eyes`, then moved as little as covering the frame needs (where it can)."""
        fc = centre_for(scale, eyes)
        return matrix(scale, covering(scale, fc, fc)[0])

    m = matrix(scale, fc)
    if avoid and mode != "fit" and max(in_view(m, b, out_w, out_h) for b in avoid) > INTRUDES:
        m = _isolating(avoid, out_w, out_h, scale, eyes_for(scale, fc), placed_at)
    return Framing(matrix=m, covered=_coverage(m, src_w, src_h, out_w, out_h))


def _isolating(avoid: Sequence[Box], out_w: int, out_h: int, scale: float, eyes: np.ndarray,
               place: Callable[[float, np.ndarray], np.ndarray]) -> np.ndarray:
    """The framing (from `place(scale, eyes)`) with the least zoom, then the least sideways move, that
    leaves every head in `avoid` out of view; if none does, the best trade of what shows of them
    against zoom (a third of a head's box shown weighs as much as zooming 1.5x: the rest is blurred)."""
    best: tuple[tuple[float, float, float], np.ndarray] | None = None
    shifts = sorted(np.linspace(-ISOLATE_SHIFT, ISOLATE_SHIFT, 23) * out_w, key=abs)
    for z in np.linspace(1.0, ISOLATE_ZOOM, 11):
        for dx in shifts:
            m = place(scale * float(z), eyes + (dx, 0.0))
            shown = max(in_view(m, b, out_w, out_h) for b in avoid)
            if shown <= INTRUDES:
                return m
            key = (shown + 0.66 * (float(z) - 1.0), float(z), abs(float(dx)))
            if best is None or key < best[0]:
                best = (key, m)
    assert best is not None  # the grid above is never empty
    return best[1]


def _coverage(m: np.ndarray, src_w: int, src_h: int, out_w: int, out_h: int) -> float:
    inside = _photo_mask(m, src_w, src_h, out_w, out_h, feather=0)
    return float(inside.mean())


def _photo_mask(m: np.ndarray, src_w: int, src_h: int, out_w: int, out_h: int, feather: int) -> np.ndarray:
    """(H, W) float32: 1 where the output shows the photo, 0 outside, a smooth ramp `feather` px wide
    just inside the photo's edge."""
    ones = np.ones((src_h, src_w), np.float32)
    if feather > 0:
        d = np.minimum.reduce([np.arange(src_w)[None, :] + np.zeros((src_h, 1)),
                               (src_w - 1 - np.arange(src_w))[None, :] + np.zeros((src_h, 1)),
                               np.arange(src_h)[:, None] + np.zeros((1, src_w)),
                               (src_h - 1 - np.arange(src_h))[:, None] + np.zeros((1, src_w))])
        ones = np.clip(d / feather, 0, 1).astype(np.float32)
        ones = ones * ones * (3 - 2 * ones)
    return np.asarray(cv2.warpAffine(ones, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0))


def frame_portrait(img: UInt8Array, framing: Framing, out_w: int, out_h: int, hide: Sequence[Box] = ()) -> UInt8Array:
    """Warp the photo into the frame; fill what it does not cover with its own blurred, darkened
    mirror extension, feathered into the photo's edge; blur the heads in `hide` (source boxes) that
    show in the frame out of focus."""
    m = framing.matrix
    framed: UInt8Array = np.asarray(cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                                   borderMode=cv2.BORDER_REFLECT_101), np.uint8)
    alpha = photo_alpha(framing, img.shape[1], img.shape[0], out_w, out_h)
    if alpha is not None:
        framed = _backdrop(img, framed, alpha, out_w, out_h)
    for box in hide:
        if in_view(m, box, out_w, out_h) > 0.0:
            _defocus(framed, _placed(m, box))
    return np.ascontiguousarray(framed)


def _defocus(frame: UInt8Array, box: Box) -> None:
    """Blur the ellipse inscribed in an output box in place (a head out of focus: sigma an eighth of
    the head's size, too soft to read a face from), feathered over a tenth of its radius either side."""
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    sigma = max(2.0, 0.125 * max(x1 - x0, y1 - y0))
    h, w = frame.shape[:2]
    pad = 3 * sigma
    bx0, by0 = max(0, int(cx - rx - pad)), max(0, int(cy - ry - pad))
    bx1, by1 = min(w, int(cx + rx + pad) + 1), min(h, int(cy + ry + pad) + 1)
    if bx1 <= bx0 or by1 <= by0:
        return
    roi = frame[by0:by1, bx0:bx1].astype(np.float32)
    soft = cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
    yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    d = np.sqrt(((xx - cx) / max(rx, 1.0)) ** 2 + ((yy - cy) / max(ry, 1.0)) ** 2)
    a = np.clip((1.1 - d) / 0.2, 0.0, 1.0)[..., None]
    a = a * a * (3 - 2 * a)
    frame[by0:by1, bx0:bx1] = np.clip(roi + (soft - roi) * a, 0, 255).astype(np.uint8)


def photo_alpha(framing: Framing, src_w: int, src_h: int, out_w: int, out_h: int) -> np.ndarray | None:
    """(H, W) float32: where the framed output shows the photo itself (1), the fill (0), and the feathered
    ramp (~3% of the frame) between them; None when the photo covers the whole frame."""
    if framing.covered >= 0.9999:
        return None
    m = framing.matrix
    scale = float(np.hypot(m[0, 0], m[0, 1]))
    feather = max(2, int(0.03 * min(out_w, out_h) / scale))  # source px, so the ramp is ~3% of the frame
    return _photo_mask(m, src_w, src_h, out_w, out_h, feather)


def _backdrop(img: UInt8Array, framed: UInt8Array, alpha_hw: np.ndarray, out_w: int, out_h: int) -> UInt8Array:
    """`framed` with what the photo does not cover (`alpha_hw` < 1) filled by its blurred, darkened
    mirror extension."""
    alpha = alpha_hw[..., None]
    # the backdrop: the mirrored extension, blurred at a quarter of the size (cheap, once per portrait)
    small = cv2.resize(framed, (max(8, out_w // 4), max(8, out_h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=0.02 * max(out_w, out_h))
    back = cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # darker the further from the photo (distance in output px, normalised by the frame size)
    outside = (alpha[..., 0] < 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 5) / (0.25 * min(out_w, out_h))
    shade = (0.78 - 0.2 * np.clip(dist, 0, 1))[..., None]
    # a little film grain keeps the backdrop from banding in H.264
    grain = np.random.default_rng(0).normal(0, 1.2, (out_h, out_w, 1)).astype(np.float32)
    out = framed.astype(np.float32) * alpha + (back * shade + grain) * (1 - alpha)
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
