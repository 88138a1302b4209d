"""Upper body: shoulders and torso rise with each breath, with a shrug (`shoulder_raise`) and a little
on the side the head tilts towards; the background stays still.

The person is found once per portrait (MediaPipe selfie segmentation; only the region connected to
the torso under the face is kept, so a false blob in the background never moves). Per frame a smooth
vertical field lifts the torso (most at the shoulders' top line, nothing at the frame's bottom, where
the body leaves the frame, and nothing on the head, which the head field moves), the portrait is
warped by it, and the warped person is composited over the still photo by its warped mask (reaching
EDGE_SLACK above the segmentation's edge, which sits a few pixels inside the visible shoulder). Motion
is upward only (a breath lifts from the photo's pose, never below it), so it never uncovers
background the photo does not show.

Cost: inside the person, at least the largest usual lift (BAND_ROLL) below its edge, the warped mask is
whole for any such lift and the warped pixels are copied as they are; above the person nothing shows
but the photo; only the band along the person's edge is blended (a float blend of the whole region was
a tenth of a frame's render time). Rows where no lift reaches, and what lies outside a photo that does
not cover the frame (its fill is put back anyway, render/photo_edge.py), are not warped at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowact.faces import segment_person
from flowact.motion.params import P
from flowact.reference import PortraitAnalysis
from flowact.render.rest_mouth import smoothstep
from flowact.types import FloatArray, UInt8Array

__all__ = ["Body", "build_body"]

BREATH_LIFT = 0.035  # shoulder lift at full inhale, eye distances
SHRUG_LIFT = 0.33  # shoulder lift at shoulder_raise = 1, eye distances
TILT_LIFT = 0.012  # lift of the shoulder the head tilts towards, eye distances per degree of roll
EDGE_SLACK = 0.05  # the person's mask is extended upwards this far (eye distances) to take the visible edge
BAND_ROLL = 15.0  # degrees of head roll the largest edge band holds (with a full breath and shrug)
BAND_LEVELS = (4.0, 8.0, 16.0)  # the lifts (pixels) of the smaller edge bands (a breath: 2-4 pixels)


@dataclass(frozen=True, slots=True)
class EdgeBand:
    """For upward lifts up to `reach` pixels: where the person's warped mask is whole (`solid`, (h, w)
    0/1: the warped pixels are copied), and the pixels where it may be partial (blended): their flat
    indices in the region (`at`) and in the frame (`frame_at`) and the still photo there (`still`,
    (n, 4) float32). Everywhere else the mask stays empty: the still photo shows."""

    reach: float
    solid: UInt8Array
    at: np.ndarray
    frame_at: np.ndarray
    still: np.ndarray

    def blend(self, warped: UInt8Array, out: UInt8Array) -> None:
        """The band's pixels of `warped` (the region, contiguous) over the still photo by their own alpha,
        into the frame `out` (contiguous RGBA); pixels are gathered and scattered as one 32-bit word."""
        w = warped.view(np.uint32).reshape(-1)[self.at].view(np.uint8).reshape(-1, 4).astype(np.float32)
        mix = self.still + (w - self.still) * (w[:, 3:] * np.float32(1 / 255)) + np.float32(0.5)
        out.view(np.uint32).reshape(-1)[self.frame_at] = mix.astype(np.uint8).view(np.uint32).reshape(-1)


@dataclass(frozen=True, slots=True)
class Body:
    x0: int
    y0: int
    x1: int
    y1: int
    breath: np.ndarray  # (h, w) float32 upward lift per unit of breath (pixels)
    shrug: np.ndarray  # (h, w) float32 lift per unit of shoulder_raise
    tilt: np.ndarray  # (h, w) float32 lift per degree of roll (+: the right side of the image)
    X: np.ndarray  # (h, w) float32 identity x, region coordinates
    Y: np.ndarray  # (h, w) float32 identity y, region coordinates
    tilt_left: np.ndarray  # (h, w) float32 `tilt` mirrored: the lift of a tilt towards the image's left
    reach: tuple[float, float, float]  # the largest breath, shrug and tilt lift (pixels)
    source: UInt8Array  # (H - y0, w, 4) the rest image and person mask from y0 to the frame's bottom (read)
    bands: tuple[EdgeBand, ...]  # by growing reach, the last for a full breath, shrug and BAND_ROLL

    @property
    def rgba(self) -> UInt8Array:
        """(h, w, 4) the rest image's region and the person mask (0..255): `source`'s rows that move."""
        return self.source[: self.y1 - self.y0]

    def _weights(self, m: FloatArray) -> tuple[float, float, float]:
        """The breath (inhale), shrug and roll a motion row lifts the body by."""
        inhale = max(float(m[P["breath"]]), 0.0) ** 2  # lungs fill in the upper half of the cycle, smoothly
        return inhale, min(max(float(m[P["shoulder_raise"]]), 0.0), 1.0), float(m[P["head_roll"]])

    def _upper_bound(self, m: FloatArray) -> float:
        """The largest lift (pixels) a motion row gives anywhere."""
        inhale, shrug, roll = self._weights(m)
        b_max, s_max, t_max = self.reach
        return inhale * b_max + shrug * s_max + abs(roll) * t_max

    def lift(self, m: FloatArray) -> np.ndarray | None:
        """The upward displacement field for a motion row, or None when it is below a tenth of a pixel."""
        if self._upper_bound(m) < 0.1:
            return None
        inhale, shrug, roll = self._weights(m)
        # breath * inhale + shrug * shrug + tilt * |roll|, a term left out when its weight is 0 (adding
        # 0.0 changes nothing)
        out: np.ndarray = self.breath * np.float32(inhale)
        if shrug != 0.0:
            out += self.shrug * np.float32(shrug)
        if roll > 0:  # clockwise tilt: the head leans towards the image's right shoulder
            out += self.tilt * np.float32(roll)
        elif roll < 0:
            out += self.tilt_left * np.float32(-roll)
        return out

    def moving(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: every pixel the body may change (the person, reached up to the largest lift)."""
        out = np.zeros(shape, bool)
        reach = int(np.ceil(self.bands[-1].reach)) + 2
        # from the mask down to the frame's bottom: the warp reads below the region's last row (a photo's
        # bottom edge lifts what lies under it)
        person = cv2.dilate((self.source[..., 3] >= 5).astype(np.uint8), np.ones((2 * reach + 1, 3), np.uint8))
        out[self.y0 : self.y1, self.x0 : self.x1] = person[: self.y1 - self.y0].astype(bool)
        return out

    def apply(self, src: UInt8Array, m: FloatArray) -> UInt8Array:
        """`src` (the rest image, RGBA: OpenCV 5 resamples four channels about twice as fast as three)
        with the torso lifted (a new image; its alpha channel is not kept), or `src` itself when nothing
        moves. The region and the person mask are remapped by the lift in one 4-channel remap and
        composited over the still photo by the warped mask: copied where it is whole, blended along the
        person's edge (the whole region blended when the lift goes beyond the precomputed band)."""
        d = self.lift(m)
        if d is None:
            return src
        map_y = np.add(self.Y, d, out=d)
        warped: UInt8Array = np.asarray(
            cv2.remap(self.source, self.X, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), np.uint8)
        out = src.copy()
        region = out[self.y0 : self.y1, self.x0 : self.x1]
        bound = self._upper_bound(m)
        band = next((b for b in self.bands if b.reach >= bound), None)
        if band is None:  # beyond every band (a roll beyond BAND_ROLL): blend the whole region
            _blend(warped, self.rgba, region)
            return out
        cv2.copyTo(warped, band.solid, region)
        band.blend(warped, out)
        return out


def _blend(warped: UInt8Array, still: UInt8Array, dst: UInt8Array) -> None:
    """`warped` over `still` by its own alpha channel, into `dst`."""
    alpha = np.multiply(cv2.extractChannel(warped, 3), np.float32(1 / 255), dtype=np.float32)
    cv2.blendLinear(warped, still, alpha, 1.0 - alpha, dst=dst)


def _edge_band(rgba: UInt8Array, rows: int, reach: float, origin: tuple[int, int], width: int) -> EdgeBand:
    """The edge band (see EdgeBand) over the first `rows` rows of the region `rgba` (to the frame's
    bottom; its alpha is the person's mask) for upward lifts up to `reach` pixels (a backward map samples
    rows y .. y + ceil(reach) + 1). `origin`: the region's (x0, y0) in a frame `width` wide."""
    alpha = rgba[..., 3]
    k = np.ones((int(np.ceil(reach)) + 2, 1), np.uint8)
    solid = cv2.erode((alpha == 255).astype(np.uint8), k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:rows]
    some = cv2.dilate((alpha > 0).astype(np.uint8), k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)[:rows]
    ys, xs = np.nonzero(some > solid)
    return EdgeBand(reach, np.ascontiguousarray(solid), (ys * alpha.shape[1] + xs).astype(np.intp),
                    ((ys + origin[1]) * width + xs + origin[0]).astype(np.intp), rgba[ys, xs].astype(np.float32))


def build_body(a: PortraitAnalysis, head: tuple[float, float, float, float]) -> Body | None:
    """The torso region and its fields, or None when no torso shows under the face. `head`: the head
    ellipse (cx, cy, rx, ry) in which the body field fades to nothing (the head field owns it)."""
    h, w = a.image.shape[:2]
    s = a.eye_distance
    lm = a.landmarks
    chin = lm[152, :2]
    person = segment_person(a.image) if a.person is None else a.person.astype(np.float32) * np.float32(1 / 255)
    # keep only the part connected to the torso under the chin
    n, labels = cv2.connectedComponents((person > 0.5).astype(np.uint8))
    seed_y = int(min(h - 1, chin[1] + 1.0 * s))
    seed_x = int(np.clip(chin[0], 0, w - 1))
    label = labels[seed_y, seed_x]
    if n <= 1 or label == 0:
        return None
    keep = cv2.dilate((labels == label).astype(np.uint8), np.ones((5, 5), np.uint8))
    # reach a little above the segmentation's edge: the model's low-resolution mask sits a few pixels
    # inside the visible shoulder line, which would otherwise stay put while the torso under it rises
    up = max(1, int(round(EDGE_SLACK * s)))
    mask = cv2.dilate((person * keep).astype(np.float32), np.ones((up + 1, 1), np.uint8), anchor=(0, 0))
    rows = np.flatnonzero(mask[int(chin[1]) :].max(axis=1) > 0.5)
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask[int(chin[1]) :].max(axis=0) > 0.5)
    # the shoulders' top line: per column, the highest person pixel below the chin's level minus a bit
    y_from = int(max(0, chin[1] - 0.6 * s))
    sub = mask[y_from:] > 0.5
    has = sub.any(axis=0)
    top = np.where(has, sub.argmax(axis=0) + y_from, h).astype(np.float32)
    shoulder_cols = has & (np.abs(np.arange(w) - chin[0]) > 1.0 * s)
    if not shoulder_cols.any():
        return None
    y_sh = float(np.median(top[shoulder_cols]))
    lift_max = SHRUG_LIFT * s
    x0 = int(max(0, cols.min() - 4))
    x1 = int(min(w, cols.max() + 5))
    y0 = int(max(0, min(y_sh, chin[1]) - lift_max - 0.6 * s))
    y1 = h
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # vertical profile: full from above the shoulder line to a little below it, then fading out towards
    # the frame's bottom (the body continues out of frame and does not move there)
    depth = max(1.0, min(2.5 * s, (h - y_sh) * 0.8))
    vert = 1.0 - smoothstep((yy - y_sh - 0.3 * s) / depth)
    # nothing on the head (the head-pose field moves it) and a smooth way in beside it
    cx, cy, rx, ry = head
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    off_head = smoothstep((r - 0.9) / 0.5)
    side = np.abs(xx - chin[0])
    neck = smoothstep((side - 0.5 * s) / (0.8 * s))  # a shrug lifts the shoulders, not the neck
    base = vert * off_head
    breath = (BREATH_LIFT * s) * base
    shrug = (SHRUG_LIFT * s) * base * neck
    right = smoothstep((xx - chin[0]) / (1.5 * s))
    tilt = (TILT_LIFT * s) * base * neck * right
    # (the lift's vertical slope stays well below 1 for these amplitudes: the map never folds)
    breath, shrug, tilt = breath.astype(np.float32), shrug.astype(np.float32), tilt.astype(np.float32)
    tilt_left = tilt[:, ::-1]
    # what is warped: the rows some lift reaches (below them the body leaves the frame unmoved), within the
    # photo (the fill around a photo that does not cover the frame is put back anyway: render/photo_edge.py)
    lifts = np.flatnonzero((breath.max(axis=1) + shrug.max(axis=1) + tilt.max(axis=1)) > 1e-3)
    if len(lifts) == 0:
        return None
    bx0, by0, bx1, by1 = x0, y0, x1, y0 + int(lifts[-1]) + 1
    if a.photo is not None:
        pc, pr = np.flatnonzero(a.photo.any(axis=0)), np.flatnonzero(a.photo.any(axis=1))
        bx0, bx1 = max(bx0, int(pc[0])), min(bx1, int(pc[-1]) + 1)
        by0, by1 = max(by0, int(pr[0])), min(by1, int(pr[-1]) + 1)
        if bx1 <= bx0 or by1 <= by0:
            return None
    win = (slice(by0 - y0, by1 - y0), slice(bx0 - x0, bx1 - x0))
    breath, shrug, tilt, tilt_left = (np.ascontiguousarray(f[win]) for f in (breath, shrug, tilt, tilt_left))
    alpha = np.round(mask[by0:h, bx0:bx1] * 255).astype(np.uint8)
    source = np.ascontiguousarray(np.dstack([a.image[by0:h, bx0:bx1], alpha]))  # read to the frame's bottom
    reach = (float(breath.max()), float(shrug.max()), float(tilt.max()))
    full = reach[0] + reach[1] + BAND_ROLL * reach[2]
    n = by1 - by0
    bands = tuple(_edge_band(source, n, r, (bx0, by0), w) for r in (*(r for r in BAND_LEVELS if r < full), full))
    return Body(bx0, by0, bx1, by1, breath, shrug, tilt,
                xx[win] - np.float32(bx0), yy[win] - np.float32(by0), tilt_left, reach, source, bands)
