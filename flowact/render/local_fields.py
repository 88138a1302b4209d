"""Full-resolution local displacement fields for the parts a smooth interpolation cannot do:
lips that part (the upper and lower lip touch at rest but move apart) and eyelids that close.

Each field is precomputed per portrait as a per-parameter basis over a small patch, so a frame
costs one small tensordot: `field = sum_k m_k * B_k`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowact.motion.params import P
from flowact.render.rig import (
    JAW,
    L_LOWER_LID,
    L_UPPER_LID,
    LOWER_INNER_LIP,
    LOWER_OUTER_LIP,
    R_LOWER_LID,
    R_UPPER_LID,
    UPPER_INNER_LIP,
    UPPER_OUTER_LIP,
    Rig,
)

__all__ = [
    "LipSeam", "LocalField", "eye_fields", "lip_seam", "mouth_field", "seam_fraction", "MOUTH_FIELD_PARAMS",
    "TEETH_SHOW",
]

TEETH_SHOW = 0.06  # inner-lip gap (eye distances) above which the portrait's teeth already show
MOUTH_FIELD_PARAMS = (
    "jaw_open", "mouth_wide", "mouth_round", "lip_press", "lip_funnel", "upper_lip_raise", "smile", "frown",
)
LIP_AND_JAW = set(UPPER_OUTER_LIP) | set(LOWER_OUTER_LIP) | set(UPPER_INNER_LIP) | set(LOWER_INNER_LIP) | set(JAW)


@dataclass(frozen=True, slots=True)
class LocalField:
    """A displacement basis over patch [y0:y1, x0:x1]: basis (K, h, w, 2), driven by params."""

    x0: int
    y0: int
    x1: int
    y1: int
    params: np.ndarray  # (K,) indices into the motion vector
    basis: np.ndarray  # (K, h, w, 2) float32 pixels per unit

    def evaluate(self, motion: np.ndarray) -> np.ndarray | None:
        w = motion[self.params]
        nz = np.flatnonzero(np.abs(w) > 1e-4)
        if len(nz) == 0:
            return None
        # axpy over the active parameters only (a BLAS GEMV here is slow when the box is busy: its
        # threads fight for the cores; np.tensordot copies)
        field: np.ndarray = self.basis[nz[0]] * np.float32(w[nz[0]])
        for k in nz[1:]:
            field += self.basis[k] * np.float32(w[k])
        return field  # (h, w, 2)

    def at(self, motion: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Displacement at given pixel positions (nearest sample), zero outside the patch."""
        out = np.zeros((len(pts), 2), np.float32)
        field = self.evaluate(motion)
        if field is None:
            return out
        xi = np.round(pts[:, 0]).astype(int) - self.x0
        yi = np.round(pts[:, 1]).astype(int) - self.y0
        ok = (xi >= 0) & (yi >= 0) & (xi < self.x1 - self.x0) & (yi < self.y1 - self.y0)
        out[ok] = field[yi[ok], xi[ok]]
        return out


def _shepard(px: np.ndarray, py: np.ndarray, pts: np.ndarray, disp: np.ndarray, sigma: np.ndarray,
             prior: float) -> np.ndarray:
    """Normalized Gaussian interpolation of point displacements onto a pixel grid: (h, w, K, 2)."""
    d2 = (px[..., None] - pts[:, 0]) ** 2 + (py[..., None] - pts[:, 1]) ** 2  # (h, w, C)
    g = np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
    norm = g.sum(-1, keepdims=True) + prior
    out: np.ndarray = np.einsum("hwc,kcd->hwkd", g / norm, disp)
    return out


def seam_fraction(rig: Rig) -> float:
    """Where the lips part, from the upper (0) to the lower (1) inner lip. Midway for a closed mouth;
    for a smile that shows its upper teeth, just above the lower lip, so the teeth stay with the upper
    jaw when the mouth opens."""
    gap = float(rig.points[rig.index[14], 1] - rig.points[rig.index[13], 1])
    return 0.8 if gap > TEETH_SHOW * rig.scale else 0.5


@dataclass(frozen=True, slots=True)
class LipSeam:
    """The line where the lips part (a `fraction` of the way from the upper to the lower inner lip), as
    points riding with the upper inner lip (`upper`) and with the lower one (`lower`): equal at rest, the
    gap between the lips once they move. `rows_u`, `rows_l`: the rig rows of those lip points."""

    rows_u: np.ndarray
    rows_l: np.ndarray
    upper: np.ndarray  # (n, 2), sorted by x
    lower: np.ndarray  # (m, 2), sorted by x


def lip_seam(rig: Rig, fraction: float) -> LipSeam:
    ix, pts = rig.index, rig.points
    up = sorted(UPPER_INNER_LIP, key=lambda i: pts[ix[i], 0])
    lo = sorted((78, *LOWER_INNER_LIP, 308), key=lambda i: pts[ix[i], 0])
    rows_u, rows_l = np.array([ix[i] for i in up]), np.array([ix[i] for i in lo])
    pu, pl = pts[rows_u], pts[rows_l]
    f = fraction
    upper = np.stack([pu[:, 0], (1 - f) * pu[:, 1] + f * np.interp(pu[:, 0], pl[:, 0], pl[:, 1])], axis=1)
    lower = np.stack([pl[:, 0], (1 - f) * np.interp(pl[:, 0], pu[:, 0], pu[:, 1]) + f * pl[:, 1]], axis=1)
    return LipSeam(rows_u, rows_l, upper.astype(np.float32), lower.astype(np.float32))


def mouth_field(rig: Rig, width: int, height: int, fraction: float | None = None) -> LocalField:
    """Lips and jaw: a field split along the line where the lips meet (`fraction` of the way from the
    upper to the lower inner lip; `seam_fraction` by default), so the mouth can open."""
    s = rig.scale
    ix = rig.index
    pts = rig.points
    keys = [P[n] for n in MOUTH_FIELD_PARAMS]
    xs = [pts[ix[i], 0] for i in JAW]
    ys = [pts[ix[i], 1] for i in (*UPPER_OUTER_LIP, *JAW)]
    x0 = int(max(0, min(xs) - 0.2 * s))
    x1 = int(min(width, max(xs) + 0.2 * s))
    y0 = int(max(0, min(ys) - 0.45 * s))
    y1 = int(min(height, max(ys) + 0.7 * s))
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # the corners (61, 291 outer; 78, 308 inner) belong to both lips: both fields move them the same,
    # so the split fades out there and the lips never tear beyond the corners
    upper_ids = [*UPPER_OUTER_LIP, *UPPER_INNER_LIP]
    lower_ids = [*LOWER_OUTER_LIP, *LOWER_INNER_LIP, *JAW, 61, 291, 78, 308]
    fields = []
    for group in (upper_ids, lower_ids):
        rows = [ix[i] for i in group]
        disp = rig.basis[keys][:, rows, :]  # (K, C, 2)
        sig = np.array([0.4 * s if i in JAW else 0.2 * s for i in group], np.float32)
        fields.append(_shepard(px, py, pts[rows], disp, sig, prior=0.05))
    # the line where the lips meet (midway between inner lips), extended beyond the corners
    up = sorted((pts[ix[i], 0], pts[ix[i], 1]) for i in UPPER_INNER_LIP)
    lo = sorted((pts[ix[i], 0], pts[ix[i], 1]) for i in (78, *LOWER_INNER_LIP, 308))
    line_x = np.array([p[0] for p in up], np.float32)
    f = seam_fraction(rig) if fraction is None else fraction
    line_y = (1 - f) * np.array([p[1] for p in up]) + f * np.interp(line_x, [p[0] for p in lo], [p[1] for p in lo])
    ym = np.interp(px[0], line_x, line_y)[None, :]  # (1, w)
    beyond = np.maximum(line_x[0] - px[0], px[0] - line_x[-1]).clip(min=0)[None, :]
    width_px = 1.5 + beyond * 0.9
    lam = np.clip((py - ym) / width_px + 0.5, 0.0, 1.0)
    lam = lam * lam * (3 - 2 * lam)
    # split strength across the mouth: full between the corners, none beyond them (there both lips
    # move as their average), so the parting never tears the skin past the corners
    ramp = 0.12 * s
    cl, cr = float(pts[ix[78], 0]), float(pts[ix[308], 0])
    split = (np.clip((px[0] - cl - 2) / ramp, 0, 1) * np.clip((cr - 2 - px[0]) / ramp, 0, 1))[None, :]
    split = split * split * (3 - 2 * split)
    avg, half = (fields[0] + fields[1]) / 2, (fields[1] - fields[0]) / 2
    basis = avg + ((2 * lam - 1) * split)[..., None, None] * half  # (h, w, K, 2)
    basis = np.transpose(basis, (2, 0, 1, 3))
    basis *= _taper(y1 - y0, x1 - x0, int(0.25 * s))[None, :, :, None]
    return LocalField(x0, y0, x1, y1, np.array(keys), np.ascontiguousarray(basis, dtype=np.float32))


def eye_fields(rig: Rig, width: int, height: int) -> list[LocalField]:
    """Eyelids: the upper lid (and the skin above it) slides down to the lower lid on a blink."""
    s = rig.scale
    out = []
    for upper, lower, param in ((L_UPPER_LID, L_LOWER_LID, "blink_l"), (R_UPPER_LID, R_LOWER_LID, "blink_r")):
        up = np.array(sorted(tuple(rig.points[rig.index[i]]) for i in upper), np.float32)
        lo = np.array(sorted(tuple(rig.points[rig.index[i]]) for i in lower), np.float32)
        x0 = int(max(0, up[:, 0].min() - 0.25 * s))
        x1 = int(min(width, up[:, 0].max() + 0.25 * s))
        y0 = int(max(0, up[:, 1].min() - 0.3 * s))
        y1 = int(min(height, lo[:, 1].max() + 0.1 * s))
        py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        yu = np.interp(px[0], up[:, 0], up[:, 1])[None, :]
        yl = np.interp(px[0], lo[:, 0], lo[:, 1])[None, :]
        gap = np.maximum(yl - yu, 0.0) * 0.4  # the warp starts the lid; eyelids.py draws it closed
        # skin above the lid follows, less and less, over a reach short enough to spare glasses rims but
        # long enough that the stretch never folds (slope <= 0.7)
        skin = np.maximum(0.06 * s, gap / 0.7)
        above = np.clip(1.0 - (yu - py) / skin, 0.0, 1.0)
        # inside the eye the drop fades linearly to nothing at the lower lid (slope < 1: no fold)
        inside = np.clip((yl - py) / np.maximum(yl - yu, 1.0), 0.0, 1.0)
        prof = np.where(py < yu, above, inside)
        lo_x, hi_x = up[0, 0], up[-1, 0]
        edge = np.clip(np.minimum(px[0] - lo_x, hi_x - px[0]) / (0.12 * s) + 1.0, 0.0, 1.0)[None, :]
        field = np.zeros((1, y1 - y0, x1 - x0, 2), np.float32)
        field[0, :, :, 1] = gap * prof * edge
        out.append(LocalField(x0, y0, x1, y1, np.array([P[param]]), field))
    return out


def _taper(h: int, w: int, margin: int) -> np.ndarray:
    """1 inside, smoothly 0 at the patch border (so local fields never leave a seam)."""
    margin = max(2, margin)
    ty = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / margin, 0, 1)
    tx = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / margin, 0, 1)
    t = np.minimum(ty[:, None], tx[None, :]).astype(np.float32)
    return t * t * (3 - 2 * t)
