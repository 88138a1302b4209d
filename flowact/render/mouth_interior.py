"""The invented mouth interior: a cavity with a tongue, and a row of upper teeth for portraits that
show none of their own. Painted by the renderer (`Renderer._mouth`) into the gap that opened between
the lips, on the small box around it; everything here is per-pixel arithmetic on that box.

The teeth are the skull's, not the lips': their widths come from the face's scale (eye distance
`s`), centred on the gap, and do not stretch when the lips widen. Each tooth is a separate, rounded
shape (central incisors widest, then laterals, canines, premolars, projected around the dental
arch), shaded as a cylinder, in the upper lip's shadow at the top, slightly translucent at its
incisal edge, with a dark line and an open embrasure between neighbours, and fading into the
cavity's shadow towards the corners (the buccal corridor). The cavity is darkest at the back and
corners and lighter towards the lower lip, where the tongue rises when the mouth is open enough.
The opening itself narrows into the corners, where the lips meet (`round_corners`). A photo whose
mouth was open paints its own interior instead (`own_interior`). Everything is computed in the
mouth's own frame (`along_mouth`: along the line through its corners and across it).
"""

from __future__ import annotations

import numpy as np

from flowact.render.rest_mouth import LUMA, Interior

__all__ = ["CORNER_P", "TOOTH_EDGES", "along_mouth", "cavity", "colour_cast", "own_interior", "round_corners",
           "rounded", "upper_teeth"]

# boundaries between the upper teeth, in eye distances from the midline as seen from the front:
# central incisor, lateral incisor, canine, two premolars (widths 8.5, 6.5, 7.5, 7, 6.5 mm around an
# arch of radius 24 mm, projected: x = R sin(arc / R); an eye distance is about 63 mm)
_ARC_MM = np.cumsum([0.0, 8.5, 6.5, 7.5, 7.0, 6.5])
TOOTH_EDGES = (24.0 * np.sin(np.minimum(_ARC_MM / 24.0, np.pi / 2)) / 63.0).astype(np.float32)
_LENGTH = np.array([1.0, 0.86, 0.92, 0.72, 0.62], np.float32)  # visible length per tooth, of the central's
_ENAMEL = np.array([214.0, 205.0, 190.0], np.float32)  # lit enamel (sRGB), before the portrait's light
_BACK = np.array([16.0, 5.0, 7.0], np.float32)  # the cavity's back, in shadow
_FRONT = np.array([74.0, 28.0, 31.0], np.float32)  # towards the lower lip (the floor of the mouth)
_TONGUE = np.array([152.0, 70.0, 72.0], np.float32)
_SKIN_CHROMA = np.array([1.28, 0.91, 0.81], np.float32)  # skin RGB / its luma: the median of 37 real portraits
_CAST_FREE = 0.2  # skin chroma within this (log) of the usual is skin, not the photo's colour grade
CORNER_P = 2.5  # the opening's height towards the corners: at most 1 - |x|^CORNER_P of the widest


def cavity(yy: np.ndarray, uy: np.ndarray, ly: np.ndarray, tx: np.ndarray, s: float) -> np.ndarray:
    """The cavity and tongue colour (h, w, 3) float32 over the box: rows `yy` (h, 1), the gap's upper
    and lower edge `uy`, `ly` (1, w), `tx` (1, w) -1..1 from the left to the right corner; or all of
    them (h, w) grids in the mouth's own frame (as for `upper_teeth`)."""
    o = np.maximum(ly - uy, 1e-3)
    v = np.clip((yy - uy) / o, 0.0, 1.0)  # 0 at the upper edge .. 1 at the lower edge
    across = np.sqrt(1.0 - tx * tx)  # 1 in the middle, 0 at the corners
    # darkest at the back (just under the upper teeth) and into the corners; the lower lip's inside and
    # the floor of the mouth catch some light
    depth = np.clip(1.0 - 4.0 * v * (1.0 - v), 0.0, 1.0)  # 0 in the middle of the gap, 1 at its edges
    light = (0.3 + 0.7 * across**0.7) * (0.75 + 0.25 * depth)
    col = (_BACK + (_FRONT - _BACK) * v[..., None] ** 1.5) * light[..., None]
    # the tongue: a soft mound rising from the lower edge when the mouth is open enough, lit on its top,
    # with a faint groove down its middle
    tongue_h = np.clip(o - 0.1 * s, 0.0, 0.16 * s) * np.clip(1.0 - (tx / 0.75) ** 2, 0.0, 1.0)
    top = ly - tongue_h
    tg = np.clip((yy - top) / 2.0, 0.0, 1.0) * (tongue_h > 0.5)
    lit = np.clip(1.0 - (yy - top) / np.maximum(tongue_h, 1.0), 0.0, 1.0)  # its top faces the light
    groove = 1.0 - 0.12 * np.exp(-((tx / 0.08) ** 2))
    tongue = _TONGUE * ((0.5 + 0.35 * lit + 0.15 * v) * (0.4 + 0.6 * across) * groove)[..., None]
    col += (tongue - col) * (tg[..., None] * 0.85)
    out: np.ndarray = col.astype(np.float32)
    return out


def upper_teeth(xs: np.ndarray, yy: np.ndarray, uy: np.ndarray, ly: np.ndarray, mid: float, tx: np.ndarray,
                s: float) -> tuple[np.ndarray, np.ndarray]:
    """The upper teeth over the box: (colour (h, w, 3) float32, coverage (h, w) 0..1). `xs` the
    columns (1, w), `mid` the midline's x; the rest as for `cavity`. Any array may instead be a whole
    (h, w) grid in the mouth's own frame (x along the line through its corners, y across it). The
    colour is lit enamel at the portrait's neutral light (the caller scales it)."""
    o = np.maximum(ly - uy, 1e-3)
    d = np.abs(xs - mid) / s  # eye distances from the midline
    k = np.clip(np.searchsorted(TOOTH_EDGES, d, side="right") - 1, 0, len(_LENGTH) - 1)
    lo, hi = TOOTH_EDGES[k], TOOTH_EDGES[k + 1]
    u = np.clip((d - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)  # across this tooth, 0..1
    q = 2.0 * u - 1.0
    round_ = np.sqrt(np.clip(1.0 - q * q, 0.0, 1.0))  # 1 at the tooth's middle, 0 at its sides
    # the central incisors show up to a tenth of an eye distance, less while the mouth is barely open
    th = np.minimum(0.11 * s, 0.6 * o) * _LENGTH[k] * (d < TOOTH_EDGES[-1])
    edge = uy + th * (0.84 + 0.16 * round_)  # the incisal edge, rounded at each tooth's corners
    dy = yy - uy
    # further teeth turn away from the light into the corners' shadow (the buccal corridor): they fade
    # into the cavity
    across = np.sqrt(np.clip(1.0 - tx * tx, 0.0, 1.0))
    fade = (1.0 - 0.6 * np.clip(d / TOOTH_EDGES[-1], 0.0, 1.0) ** 2) * np.clip(across / 0.35, 0.0, 1.0)
    cover = np.clip((edge - yy) / 1.1 + 0.5, 0.0, 1.0) * (th > 0.6) * fade
    t = np.clip(dy / np.maximum(th, 1.0), 0.0, 1.0)  # 0 under the lip .. 1 at the incisal edge
    shade = (0.86 + 0.14 * round_)  # each tooth a cylinder
    shade = shade * (0.62 + 0.38 * np.clip(dy / np.maximum(0.35 * th, 1.0), 0.0, 1.0))  # the upper lip's shadow
    shade = shade * (1.0 - 0.14 * np.clip((t - 0.72) / 0.28, 0.0, 1.0))  # translucent incisal edge
    shade = shade * (1.0 - 0.35 * np.clip(d / TOOTH_EDGES[-1], 0.0, 1.0) ** 1.5)
    # the line between neighbours (about a pixel at 480p), opening into a dark notch at the incisal edge
    px = np.minimum(u, 1.0 - u) * (hi - lo) * s  # pixels to the nearest boundary
    line = np.exp(-((px / 0.5) ** 2)) * (0.07 + 0.23 * t ** 2)
    shade = shade * (1.0 - line)
    col = _ENAMEL * shade[..., None]
    return col.astype(np.float32), cover.astype(np.float32)


def round_corners(uy: np.ndarray, ly: np.ndarray, tx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gap's upper and lower edges (1, w) narrowed towards the corners, where the lips meet: its
    height at most 1 - |tx|^CORNER_P of the widest (`tx` -1..1 from corner to corner), about its own
    middle line. The rig's few inner-lip points otherwise open the gap almost fully a pixel or two from
    each corner: a hole with blunt ends."""
    mid, half = (uy + ly) / 2, np.maximum(ly - uy, 0.0) / 2
    bound = float(half.max()) * (1.0 - np.abs(tx) ** CORNER_P)
    half = np.minimum(half, bound)
    return (mid - half).astype(np.float32), (mid + half).astype(np.float32)


def own_interior(col: np.ndarray, interior: Interior, xs: np.ndarray, yy: np.ndarray, uy: np.ndarray,
                  ly: np.ndarray, left: float, right: float) -> None:
    """Paint the reference's own mouth interior into `col` (h, w, 3) in place: its upper half rides
    under the upper lip, its lower half over the lower lip, the cavity shows between them when the
    mouth opens wider than the photo's."""
    tx = np.clip((xs - left) / max(right - left, 1.0), 0.0, 1.0)  # across the mouth, 0..1
    xr = interior.xs[0] + tx * (interior.xs[-1] - interior.xs[0])
    ru = np.interp(xr, interior.xs, interior.upper)
    rl = np.interp(xr, interior.xs, interior.lower)
    half = np.maximum(rl - ru, 0.0) / 2
    mid = (uy + ly) / 2
    dy, dl = yy - uy, ly - yy
    upper = yy < mid
    src_y = np.where(upper, ru + dy, rl - dl)
    reach = np.where(upper, dy, dl)
    a = np.clip((half - reach) / 1.5 + 0.5, 0.0, 1.0) * (half > 1.0)
    img = interior.image
    sy = np.clip(np.round(src_y), 0, img.shape[0] - 1).astype(np.intp)
    sx = np.broadcast_to(np.clip(np.round(xr), 0, img.shape[1] - 1).astype(np.intp), sy.shape)
    own = img[sy, sx].astype(np.float32)
    col += (own - col) * a[..., None]


def along_mouth(pts: np.ndarray, ca: np.float32, sa: np.float32) -> np.ndarray:
    """Points (n, 2+) relative to a mouth corner, turned into the mouth's frame (u along its corners'
    line, v across it) and sorted by u."""
    u = pts[:, 0] * ca + pts[:, 1] * sa
    v = pts[:, 1] * ca - pts[:, 0] * sa
    out: np.ndarray = np.stack([u, v], axis=1)[np.argsort(u, kind="stable")]
    return out


def rounded(edge: np.ndarray, passes: int = 2) -> np.ndarray:
    """An edge polyline (n, 2), sorted along the mouth, with its corners cut (Chaikin: each pass puts two
    points at 1/4 and 3/4 of every segment, the ends kept). The gap's few lip points otherwise paint a
    polygon: a wide-open mouth showed a hexagonal hole with angles the warped lips around it do not have."""
    for _ in range(passes):
        if len(edge) < 3:
            break
        a, b = edge[:-1], edge[1:]
        cut = np.empty((2 * len(a), edge.shape[1]), edge.dtype)
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        edge = np.concatenate([edge[:1], cut[1:-1], edge[-1:]])
    return edge


def colour_cast(skin: np.ndarray) -> np.ndarray:
    """Per-channel gains (RGB, luma kept) that give the invented interior the photo's colour grade. The
    interior's colours are those of a neutrally lit mouth; in a graded photo (an amber film still, a
    yellowed varnish) they stand out as purple beside the skin. The photo's skin (median RGB of a patch,
    `skin`), relative to usual skin, tells the grade: what lies beyond the usual spread of skin tones
    (_CAST_FREE in log terms) is applied; an ordinary photo gets exactly 1."""
    luma = float(skin @ LUMA)
    if luma < 8.0:
        return np.ones(3, np.float32)
    off = np.log(np.maximum(skin / luma, 1e-3) / _SKIN_CHROMA)
    gain = np.exp(np.sign(off) * np.maximum(np.abs(off) - _CAST_FREE, 0.0))
    out: np.ndarray = np.clip(gain / float(gain @ LUMA), 0.2, 2.0).astype(np.float32)
    return out
