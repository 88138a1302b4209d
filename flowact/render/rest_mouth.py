"""A closed, relaxed rest mouth for any reference, and the reference's own mouth interior.

A portrait that laughs, talks or smiles with parted lips would otherwise stay open at rest (the
renderer's zero motion is the photo). Here, once per portrait, the lips are brought together (to a
relaxed parting of REST_GAP, where the photo's own interior shows as the line between them) with a
warp that is the inverse of a jaw drop: the upper lip comes down a little, the lower lip comes up and
the chin and jaw rise with it, less than the lip (CHIN_SHARE: as at rest, lips meet while the teeth
stay a little apart; fading out below the chin and towards the face's sides, so neck and background stay),
and the interior between the inner lips is skipped. The cheeks and eyes keep the photo's expression.
The result is the renderer's rest image; its landmarks move with it, so everything downstream (rig,
fields, mouth gap) sees a closed mouth.

The closing reaches the interior's own edges, not only the face mesh's lines (`inner_edges`): near
the corners of a round opening the mesh's straight lines cut inside the dark, which stayed beside the
closed lips as crescents.

Where the closed lips meet, the line the photo's interior leaves between them is shaded half-way to
the interior's dark (SEAM_SHADOW): between a laugh's lips it is the lower teeth, a pale line where
closed lips meet in a shadow. The shade goes as the lips part (renderer._unwind_mouth).

The closing warp is kept too (`Unwind`): when speech opens the mouth, the renderer first undoes the
closing (the same warp, scaled down), so the photo's own lips, teeth and smile come back as they
were, up to the photo's aperture; only wider openings are synthesized. As a fallback (a gap opened by
other mouth shapes at rest), the interior the photo showed is kept as a texture whose upper part rides
under the upper lip and lower part over the lower lip (renderer._mouth).

What this trades (bench/fidelity.py, dlib's descriptor): a closed mouth is a different expression to a
face model. Real photos of one person smiling or laughing and with the mouth closed are 0.27-0.44
apart, and the pressed-shut rest of an open-mouth photo was 0.25-0.32 from that photo. It grows
steadily with how far the lips close, and comes from the mouth itself and about as much from the
chin's travel (`--explain`: the rest frame with only its mouth box, or all but its mouth box, is
0.18-0.27 from the photo). So the upper lip, whose travel costs most, does a fifth of the closing; the
chin rises 0.7 as far as the lower lip (a full rise shortened the face: rest distances of
obama_speaking, obama_smile, astronaut 0.22-0.23 -> 0.19-0.20); the lips stay a hair apart (no drawn
seam line, which cost up to 0.04 on its own); and speech undoes the closing instead of opening a
synthetic mouth on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from flowact.reference import PortraitAnalysis
from flowact.render.rig import JAW, LOWER_INNER_LIP, LOWER_OUTER_LIP, UPPER_INNER_LIP, UPPER_OUTER_LIP
from flowact.types import UInt8Array

__all__ = ["LUMA", "OPEN_GAP", "Interior", "RestMouth", "Unwind", "close_mouth", "lower_lip_band", "own_split",
           "smiles", "smoothstep"]

OPEN_GAP = 0.06  # inner-lip gap at the centre (eye distances) above which a reference is closed at rest
UPPER_SHARE = 0.2  # the share of the gap the upper lip travels (the jaw does the rest)
CHIN_SHARE = 0.7  # the chin rises this share of the lower lip's rise: lips meet, teeth stay apart (as at rest)
REST_GAP = 0.03  # the lips stay this far apart at rest (eye distances; ~2 px at 854x480): relaxed, not pressed
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> luma (Rec. 601), as `image @ LUMA`
EDGE_REACH = 0.12  # eye distances: how far out from the mesh's inner-lip line the interior's dark may go on
EDGE_LEVEL = 0.75  # interior while darker than this far from its dark to the lip's tone (a soft edge's blur too)
EDGE_CONTRAST = 30.0  # luma: the interior is told from a lip only if this much darker
# how far the line between the closed lips is taken towards the interior's dark. Between a laugh's closed
# lips that line is the photo's lower teeth, pale where lips meet in a shadow: dlib read such a rest mouth
# 0.12 eye distances open, more than half its speech (facetorch_afro_laugh), and a smile's 0.057; shaded
# half-way, 0.10 and 0.022, identity within 0.01. Fully dark, it read as a drawn line (and no more closed).
SEAM_SHADOW = 0.5
SMILE_CORNERS = 0.04  # an open mouth smiles when its corners are no lower than this below the upper lip's middle


@dataclass(frozen=True, slots=True)
class Interior:
    """The reference's mouth interior: per x from the left to the right inner corner (`xs`), the
    upper and lower inner-lip y in the original image."""

    image: UInt8Array
    xs: np.ndarray
    upper: np.ndarray
    lower: np.ndarray


@dataclass(frozen=True, slots=True)
class Unwind:
    """The closing warp over the patch [y0:y0+h, x0:x0+w] of the rest image: rest pixel (x, y) shows
    the original at (x, y + offset[y - y0, x - x0]). Scaling the offset by k in 0..1 gives the mouth k
    of the way closed; 0 is the photo itself."""

    image: UInt8Array  # the original (open-mouth) image
    x0: int
    y0: int
    offset: np.ndarray  # (h, w) float32: source y offset, nonzero only where the closing moved pixels
    gap: float  # the gap it closes at the mouth's centre, pixels
    shade: np.ndarray  # (h, w) float32: how far each rest pixel is taken to `dark` (the seam's line)
    dark: np.ndarray  # (3,) float32 RGB: the interior's dark


@dataclass(frozen=True, slots=True)
class RestMouth:
    analysis: PortraitAnalysis  # the rest reference (mouth closed); the original if it was closed
    photo: PortraitAnalysis  # the original, its inner lips where the image shows them
    interior: Interior | None = None  # the original's interior, if it was open
    unwind: Unwind | None = None  # the closing warp, if it was open


def smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic between (zero slope at both ends)."""
    t = np.clip(t, 0.0, 1.0)
    out: np.ndarray = t * t * (3 - 2 * t)
    return out


def _inner_lips(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    up = lm[sorted(UPPER_INNER_LIP, key=lambda i: lm[i, 0]), :2]
    lo = lm[sorted((78, *LOWER_INNER_LIP, 308), key=lambda i: lm[i, 0]), :2]
    return up, lo


def own_split(a: PortraitAnalysis) -> float:
    """Where an open photo's mouth opens further, as a fraction of the way from its upper to its lower
    inner lip: the darkest band of its interior's middle (between the upper and lower teeth, or under
    the upper teeth of a smile), so the upper teeth stay with the upper jaw and the lower ones go down
    with the chin. Kept within 0.35..0.85 of the gap."""
    lm, s = a.landmarks, a.eye_distance
    up, lo = _inner_lips(lm)
    xl, xr = float(lm[78, 0]), float(lm[308, 0])
    xs = np.linspace(xl + 0.3 * (xr - xl), xr - 0.3 * (xr - xl), 9)
    uy, ly = np.interp(xs, up[:, 0], up[:, 1]), np.interp(xs, lo[:, 0], lo[:, 1])
    if float(np.median(ly - uy)) < 0.04 * s:
        return 0.5
    ts = np.linspace(0.35, 0.85, 11)
    luma = a.image.astype(np.float32) @ LUMA
    ys = uy[None, :] + ts[:, None] * (ly - uy)[None, :]  # (t, x)
    xi = np.clip(np.round(xs), 0, luma.shape[1] - 1).astype(np.intp)[None, :]
    yi = np.clip(np.round(ys), 0, luma.shape[0] - 1).astype(np.intp)
    rows = np.convolve(luma[yi, np.broadcast_to(xi, yi.shape)].mean(axis=1), np.ones(3) / 3, "same")
    rows[0], rows[-1] = rows[1], rows[-2]  # the smoothing's ends see only two samples
    return float(ts[int(np.argmin(rows))])


def lower_lip_band(a: PortraitAnalysis) -> float:
    """How far (pixels, at the mouth's centre) the lower lip's inner edge lies below where the face
    mesh put it, or 0. The mesh sometimes lays the lower inner lip along the lower teeth's edge, with
    the dark gap between the teeth and the lip still below it (a broad laugh): in most columns across
    the mouth's middle half, a band darker than both the teeth above and the lip's body below, in the
    lip's upper 60%, is the interior; the lip starts where the luma climbs halfway back to the lip's."""
    lm = a.landmarks
    _, lo = _inner_lips(lm)
    xl, xr = float(lm[78, 0]), float(lm[308, 0])
    xs = np.linspace(xl + 0.25 * (xr - xl), xr - 0.25 * (xr - xl), 11)
    outer = float(lm[17, 1])  # the lower lip's outer edge at the centre
    luma = a.image.astype(np.float32) @ LUMA
    h, w = luma.shape
    ext = []
    for x, y in zip(xs, np.interp(xs, lo[:, 0], lo[:, 1]), strict=True):
        col = luma[:, int(np.clip(round(float(x)), 0, w - 1))]
        y_lo, y_hi = int(round(y)), int(round(y + 0.6 * (outer - y)))
        if y_lo < 3 or y_hi - y_lo < 3 or outer >= h:
            ext.append(0.0)
            continue
        seg = col[y_lo : y_hi + 1]
        k = int(np.argmin(seg))
        dark = float(seg[k])
        lip = float(np.median(col[int(round(y + 0.7 * (outer - y))) : int(round(outer)) + 1]))
        teeth = float(np.median(col[y_lo - 3 : y_lo + 1]))
        back = np.flatnonzero(seg[k:] >= dark + 0.5 * (lip - dark))
        ext.append(float(k + back[0]) if dark < 0.7 * min(lip, teeth) and len(back) else 0.0)
    found = np.array(ext)
    return float(np.median(found)) if (found > 0).mean() >= 0.6 else 0.0


@dataclass(frozen=True, slots=True)
class InnerEdges:
    """An open mouth's inner lips at `xs` (every pixel column from `xl` to `xr`, and the mesh's own
    points): the upper and lower inner-lip y, where the image's dark interior ends."""

    xs: np.ndarray
    upper: np.ndarray
    lower: np.ndarray

    @property
    def xl(self) -> float:
        return float(self.xs[0])

    @property
    def xr(self) -> float:
        return float(self.xs[-1])


def inner_edges(a: PortraitAnalysis) -> InnerEdges:
    """The inner lips, moved out to where the photo's dark interior ends. Straight lines between the
    mesh's inner-lip points cut inside a round opening (a surprised "O", a laugh) near its corners, and
    the mesh itself often sits a pixel or more inside the dark there: a closing that stops at those lines
    leaves the rest of the interior as dark crescents beside the closed lips. So, towards the corners,
    each column walks outward from the line (up from the upper lip, down from the lower; just beyond a
    corner, from the corner's row) while the image stays darker than EDGE_LEVEL of the way from the
    interior's dark to that lip's own tone. Teeth at the line, a pale interior, or lips no darker than
    EDGE_CONTRAST above the interior leave the lines where the mesh put them."""
    lm, s = a.landmarks, a.eye_distance
    up, lo = _inner_lips(lm)
    xl, xr = float(lm[78, 0]), float(lm[308, 0])
    h, w = a.image.shape[:2]
    side = EDGE_REACH * s
    xs = np.arange(max(0, int(np.ceil(xl - side))), min(w - 1, int(np.floor(xr + side))) + 1, dtype=np.float32)
    uy, ly = np.interp(xs, up[:, 0], up[:, 1]), np.interp(xs, lo[:, 0], lo[:, 1])
    middle = (xs > xl + 0.2 * (xr - xl)) & (xs < xr - 0.2 * (xr - xl))
    if middle.sum() < 3:  # too small a mouth to tell its interior from its lips
        return InnerEdges(xs, uy.astype(np.float32), ly.astype(np.float32))
    y0, y1 = max(0, int(np.min(lm[[*UPPER_OUTER_LIP], 1])) - 2), min(h, int(np.max(lm[[*LOWER_OUTER_LIP], 1])) + 3)
    luma = a.image[y0:y1, int(xs[0]) : int(xs[-1]) + 1].astype(np.float32) @ LUMA  # the mouth's box
    cols = np.arange(len(xs))

    def at(y: np.ndarray) -> np.ndarray:
        out: np.ndarray = luma[np.clip(np.round(y).astype(np.intp) - y0, 0, luma.shape[0] - 1), cols]
        return out

    inside = np.concatenate([at(uy + t * (ly - uy))[middle] for t in np.linspace(0.15, 0.85, 8)])
    dark = float(np.percentile(inside, 25))
    uo = lm[sorted(UPPER_OUTER_LIP, key=lambda i: lm[i, 0]), :2]
    lo_out = lm[sorted(LOWER_OUTER_LIP, key=lambda i: lm[i, 0]), :2]
    # each lip's tone: at its middle, over the mouth's middle (towards the corners the interior's dark
    # reaches where the mesh puts the lip)
    uo_y, lo_y = np.interp(xs, uo[:, 0], uo[:, 1]), np.interp(xs, lo_out[:, 0], lo_out[:, 1])
    lip_u = float(np.median(at(0.5 * (uy + uo_y))[middle]))
    lip_l = float(np.median(at(0.5 * (ly + lo_y))[middle]))
    reach = int(round(EDGE_REACH * s))
    within = (xs >= xl) & (xs <= xr)
    # only towards the corners, where straight lines cut a round opening short: across the middle the
    # mesh follows the lips, and the gaps between teeth there are no edge
    towards_corners = smoothstep((np.abs(xs - 0.5 * (xl + xr)) / max(0.5 * (xr - xl), 1.0) - 0.4) / 0.3)
    # a walk starts one pixel inside the line (beyond the corners, the corner's row) and counts only if that
    # pixel and the line's own are dark: where the mesh found the lip's edge (teeth at the line) nothing moves

    def walk(line: np.ndarray, outer: np.ndarray, step: int, lip: float) -> np.ndarray:
        """Per column, how many pixels beyond the line (in direction `step`) are still interior-dark: at
        most half the way to the lip's outer edge (a lip as dark as the interior, as some are towards
        the corners, keeps its outer half), at most EDGE_REACH."""
        if lip - dark < EDGE_CONTRAST:
            return np.zeros(len(xs), np.float32)
        rows = (np.round(line) - step)[None, :] + step * np.arange(reach + 2)[:, None]
        vals = luma[np.clip(rows.astype(np.intp) - y0, 0, luma.shape[0] - 1), cols[None, :]]
        is_dark = (vals < dark + EDGE_LEVEL * (lip - dark)) & (rows >= y0) & (rows < y1)
        run = np.maximum(np.cumprod(is_dark, axis=0).sum(axis=0) - 2, 0).astype(np.float32)
        run = np.where(within, np.minimum(run, 0.5 * np.abs(outer - line)), run) * towards_corners
        padded = np.pad(run, 1, mode="edge")
        run = np.median(np.stack([padded[k : k + len(run)] for k in range(3)]), axis=0)  # one column is noise
        return _smooth(run, 3)

    ku, kl = walk(uy, uo_y, -1, lip_u), walk(ly, lo_y, 1, lip_l)
    outside = ~within
    ku[outside & (ku + kl < 2)] = 0.0  # beyond a corner only an opening at least 2 px tall is the interior's
    kl[outside & (ku == 0)] = 0.0
    keep = within | (ku + kl > 0)
    first, last = int(np.argmax(keep)), len(keep) - int(np.argmax(keep[::-1])) - 1
    # the mesh's own points stay vertices of the lines (sampling only whole columns would cut their corners)
    pts = np.concatenate([up[:, 0], lo[:, 0]])
    ex = np.union1d(xs[first : last + 1], pts[(pts > xs[first]) & (pts < xs[last])])
    return InnerEdges(ex.astype(np.float32),
                      (np.interp(ex, up[:, 0], up[:, 1]) - np.interp(ex, xs, ku)).astype(np.float32),
                      (np.interp(ex, lo[:, 0], lo[:, 1]) + np.interp(ex, xs, kl)).astype(np.float32))


def _with_lower_lip_lowered(a: PortraitAnalysis, by: float) -> PortraitAnalysis:
    """The lower inner lip's landmarks moved down `by` pixels in the mouth's middle, tapering to none
    at its corners."""
    lm = a.landmarks.copy()
    xl, xr = float(lm[78, 0]), float(lm[308, 0])
    idx = list(LOWER_INNER_LIP)
    t = np.abs((lm[idx, 0] - (xl + xr) / 2) / max((xr - xl) / 2, 1.0))
    lm[idx, 1] += by * (1.0 - smoothstep((t - 0.5) / 0.5))
    return replace(a, landmarks=lm)


def _smooth(v: np.ndarray, n: int) -> np.ndarray:
    """A running mean over n samples (n odd), the ends repeated."""
    out: np.ndarray = np.convolve(np.pad(v, n // 2, mode="edge"), np.ones(n) / n, "valid").astype(np.float32)
    return out


def _on_edges(a: PortraitAnalysis, edges: InnerEdges) -> PortraitAnalysis:
    """The inner-lip landmarks moved out onto the interior's edges (never inwards)."""
    lm = a.landmarks.copy()
    iu, il = list(UPPER_INNER_LIP[1:-1]), list(LOWER_INNER_LIP)
    lm[iu, 1] = np.minimum(lm[iu, 1], np.interp(lm[iu, 0], edges.xs, edges.upper))
    lm[il, 1] = np.maximum(lm[il, 1], np.interp(lm[il, 0], edges.xs, edges.lower))
    return replace(a, landmarks=lm)


def _lower_lip_tone(a: PortraitAnalysis) -> float:
    """The lower lip's luma: the median over its middle third, at the mouth's centre (5 columns).

    Not `inner_edges`' lip tone, nor its dark for `_interior_dark`: those find where an opening ends
    (the lips' halves over the mouth's middle; the interior's 25th percentile), these how far the line
    between the closed lips is shaded. Shading by inner_edges' measures (tried) read the rest mouths more
    open to dlib: obama_smile 0.025 -> 0.057, facetorch_afro_laugh 0.104 -> 0.119 (over half its speech
    again), einstein_full 0.089 -> 0.096."""
    lm = a.landmarks
    x, top, bottom = int(round(float(lm[17, 0]))), float(lm[14, 1]), float(lm[17, 1])
    y0, y1 = int(round(top + (bottom - top) / 3)), int(round(bottom - (bottom - top) / 3)) + 1
    h, w = a.image.shape[:2]
    box = a.image[max(0, y0) : min(h, max(y1, y0 + 1)), max(0, x - 2) : min(w, x + 3)].astype(np.float32)
    return float(np.median(box.reshape(-1, 3) @ LUMA)) if box.size else 128.0


def _interior_dark(image: UInt8Array, edges: InnerEdges) -> np.ndarray:
    """The colour of an open mouth's dark: the mean of its interior's darkest tenth (by luma)."""
    xs = np.arange(int(np.ceil(edges.xl)), int(np.floor(edges.xr)) + 1)
    uy, ly = np.interp(xs, edges.xs, edges.upper), np.interp(xs, edges.xs, edges.lower)
    cols = [image[max(0, int(np.ceil(u))) : int(np.floor(lo)) + 1, x] for x, u, lo in zip(xs, uy, ly, strict=True)
            if 0 <= x < image.shape[1]]
    pix = np.concatenate([c for c in cols if len(c)] or [np.zeros((1, 3), np.uint8)]).astype(np.float32)
    luma = pix @ LUMA
    out: np.ndarray = pix[luma <= np.percentile(luma, 10)].mean(axis=0).astype(np.float32)
    return out


def smiles(a: PortraitAnalysis) -> bool:
    """Whether the photo's open mouth is a smile: its corners drawn up level with the upper inner lip's
    middle (within SMILE_CORNERS eye distances), where a speaking or laughing mouth's hang lower
    (measured: smiles -0.02..+0.12, speaking and laughing -0.09..-0.15)."""
    lm = a.landmarks
    corners = float(lm[61, 1] + lm[291, 1]) / 2
    return float(lm[13, 1]) - corners > -SMILE_CORNERS * a.eye_distance


def close_mouth(a: PortraitAnalysis) -> RestMouth:
    lm = a.landmarks
    s = a.eye_distance
    g0 = float(lm[14, 1] - lm[13, 1])
    if g0 <= OPEN_GAP * s:
        return RestMouth(a, a)
    band = lower_lip_band(a)
    if band > 0.0:
        a = _with_lower_lip_lowered(a, band)
    edges = inner_edges(a)
    a = _on_edges(a, edges)
    lm = a.landmarks
    g0 = float(lm[14, 1] - lm[13, 1])
    closure = 1.0 - min(REST_GAP * s, g0) / g0  # the share of the photo's gap closed at rest
    h, w = a.image.shape[:2]
    up = np.stack([edges.xs, edges.upper], axis=1)  # every column: the closing reaches the interior's edge
    lo = np.stack([edges.xs, edges.lower], axis=1)
    xl, xr = edges.xl, edges.xr
    jaw = lm[list(JAW), :2]
    chin_y = float(lm[152, 1])
    ru = max(1.6 * UPPER_SHARE * g0, 0.9 * float(lm[13, 1] - lm[2, 1]))  # upper lip's reach: up to the nose
    rb = 0.45 * s  # from the lip's own motion to the whole jaw's
    # below the chin the lift fades out (the neck and collar stay), never steeper than a fold allows
    fade = max(0.35 * s, 2.0 * (1 - UPPER_SHARE) * g0)

    def gap(x: np.ndarray) -> np.ndarray:
        g = np.interp(x, lo[:, 0], lo[:, 1]) - np.interp(x, up[:, 0], up[:, 1])
        out: np.ndarray = closure * np.where((x > xl) & (x < xr), np.maximum(g, 0.0), 0.0)
        return out

    def jaw_profile(x: np.ndarray) -> np.ndarray:
        ramp = 0.35 * s
        out: np.ndarray = smoothstep((x - jaw[:, 0].min()) / ramp) * smoothstep((jaw[:, 0].max() - x) / ramp)
        return out

    def lower_shift(x: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        """How far up the content at depth t below the seam (and height y) moves."""
        b = smoothstep(t / rb)
        amount = (1 - UPPER_SHARE) * (gap(x) * (1 - b) + CHIN_SHARE * closure * g0 * jaw_profile(x) * b)
        out: np.ndarray = amount * (1 - smoothstep((y - chin_y + 0.1 * s) / fade))
        return out

    # the patch: the lower face from the nose to below the chin
    x0 = int(max(0, jaw[:, 0].min() - 0.1 * s))
    x1 = int(min(w, jaw[:, 0].max() + 0.1 * s))
    y0 = int(max(0, lm[2, 1] - 0.1 * s))
    y1 = int(min(h, chin_y + fade + 0.1 * s))
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    xs = px[0]
    uy = np.interp(xs, up[:, 0], up[:, 1])[None, :]
    g = gap(xs)[None, :]
    ym = uy + UPPER_SHARE * g  # where the lips meet in the rest image
    above = py < ym
    t_up = np.maximum(ym - py, 0.0)
    src_up = py - UPPER_SHARE * g * (1 - smoothstep(t_up / ru))
    t_lo = np.maximum(py - ym, 0.0)
    src_lo = py + lower_shift(px, t_lo, py)
    map_y = np.where(above, src_up, src_lo).astype(np.float32)
    # the pixels the seam crosses show both lips by the share of the pixel on each side: a sloping seam
    # (a tilted head, a lopsided smile) between unlike tones (skin above, the interior's line below)
    # would otherwise step from row to row in a staircase
    share_up = np.clip(ym - py + 0.5, 0.0, 1.0)[..., None]
    patch = (cv2.remap(a.image, px, src_up.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE).astype(np.float32) * share_up
             + cv2.remap(a.image, px, src_lo.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32) * (1.0 - share_up))
    # the line between the closed lips (the interior's last REST_GAP), shaded towards the interior's dark
    # (SEAM_SHADOW of the way): between a laugh's lips it is the lower teeth, a pale line where closed
    # lips meet in a shadow (see SEAM_SHADOW)
    seam_bottom = ym + g * (1.0 - closure) / max(closure, 1e-3)
    shade = SEAM_SHADOW * np.clip(np.minimum(py + 0.5, seam_bottom) - np.maximum(py - 0.5, ym), 0.0, 1.0)
    dark = _interior_dark(a.image, edges)
    # only what is lighter than the interior's dark is shaded, fully from the lower lip's own tone up (teeth,
    # a pale rim): a dark line stays as it is (the wide-open "O" read more open to dlib when darkened)
    dark_l, lip_l = float(dark @ LUMA), _lower_lip_tone(a)
    shade *= np.clip((patch @ LUMA - dark_l) / max(lip_l - dark_l, EDGE_CONTRAST), 0.0, 1.0)
    patch = patch * (1.0 - shade[..., None]) + dark * shade[..., None]
    image = a.image.copy()
    image[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)
    # the landmarks move with the content (forward displacement, evaluated at each point's own place)
    pts = lm.copy()
    x, y = lm[:, 0], lm[:, 1]
    uy_p = np.interp(x, up[:, 0], up[:, 1])
    ly_p = np.interp(x, lo[:, 0], lo[:, 1])
    gp = gap(x)
    seam = uy_p + UPPER_SHARE * gp
    is_upper = y < seam
    is_upper[list(LOWER_INNER_LIP)] = False
    pts[:, 1] = np.where(
        is_upper,
        y + UPPER_SHARE * gp * (1 - smoothstep(np.maximum(uy_p - y, 0.0) / ru)),
        y - lower_shift(x, np.maximum(y - ly_p, 0.0), y),
    )
    ix = np.arange(int(np.ceil(xl)), int(np.floor(xr)) + 1, dtype=np.float32)
    interior = Interior(a.image, ix, np.interp(ix, up[:, 0], up[:, 1]).astype(np.float32),
                        np.interp(ix, lo[:, 0], lo[:, 1]).astype(np.float32))
    closed = replace(a, image=np.ascontiguousarray(image), landmarks=pts.astype(np.float32))
    offset = (map_y - py).astype(np.float32)
    rows, cols = np.flatnonzero(offset.any(axis=1)), np.flatnonzero(offset.any(axis=0))
    if len(rows) == 0:
        return RestMouth(a, a)
    offset = offset[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # only where the closing moved anything
    shade = shade[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    unwind = Unwind(a.image, x0 + int(cols[0]), y0 + int(rows[0]), np.ascontiguousarray(offset), closure * g0,
                    np.ascontiguousarray(shade), dark)
    return RestMouth(closed, a, interior, unwind)
