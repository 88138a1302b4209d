"""Closed eyelids drawn over the eye opening during a blink.

A warp alone closes an eye by pulling the skin above it down; behind glasses that skin is the rim,
which then bends. So the warp only starts the lid moving, and the lid itself is composited: the eye
opening above the descending lid edge is filled with the portrait's own upper-lid skin, shaded towards
a soft lash line. Its colour, across the eye, is the skin just above the open lid (the brightest 30%
of a band there, so lashes, liner or a thin rim crossing it do not count; with the eye's make-up, as a
closed lid shows it; taken from under the eye, it was a tan patch on made-up eyes), never much darker
than the skin under the eye (a thick rim or a shadow above); its grain is the skin under the lower lid
(behind the same lens and light), mirrored upwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowact.motion.params import P
from flowact.render.rest_mouth import LUMA
from flowact.render.rig import L_LOWER_LID, L_UPPER_LID, R_LOWER_LID, R_UPPER_LID, Rig
from flowact.types import UInt8Array

__all__ = ["Eyelid", "build_eyelids", "draw_eyelid"]

LID_SAMPLES = 12  # places across the eye where the lid's colour is taken
ABOVE_LID = (0.04, 0.16)  # the band above the open upper lid the colour comes from (eye distances)
DARKEST_LID = 0.6  # the lid's luma is at least this share of the skin's under the eye


@dataclass(frozen=True, slots=True)
class Eyelid:
    param: int  # index of blink_l / blink_r in the motion vector
    upper: np.ndarray  # rig rows of the upper lid, sorted by x
    lower: np.ndarray  # rig rows of the lower lid, sorted by x
    lash: np.ndarray  # (3,) float32 lash line
    across: np.ndarray  # (LID_SAMPLES, 3) float32 the lid's colour from the eye's left to its right corner


def build_eyelids(rig: Rig, image: UInt8Array) -> list[Eyelid]:
    s = rig.scale
    out = []
    for upper, lower, name in ((L_UPPER_LID, L_LOWER_LID, "blink_l"), (R_UPPER_LID, R_LOWER_LID, "blink_r")):
        up = np.array(sorted((rig.index[i] for i in upper), key=lambda r: rig.points[r, 0]))
        lo = np.array(sorted((rig.index[i] for i in lower), key=lambda r: rig.points[r, 0]))
        lp = rig.points[lo]
        x0, x1 = lp[:, 0].min(), lp[:, 0].max()
        w = x1 - x0
        ya = int(lp[:, 1].max() + 0.06 * s)
        patch = image[max(0, ya) : max(1, ya + int(0.12 * s)), int(x0 + 0.2 * w) : int(x1 - 0.2 * w) + 1]
        under = (np.median(patch.reshape(-1, 3), axis=0) if patch.size else np.array([180, 140, 120])).astype(
            np.float32
        )
        across = _above_the_lid(image, rig.points[up], s, under)
        lash = (0.3 * np.median(across, axis=0)).astype(np.float32)  # the lid's skin, darkened
        out.append(Eyelid(P[name], up, lo, lash, across))
    return out


def _above_the_lid(image: UInt8Array, lid: np.ndarray, s: float, under: np.ndarray) -> np.ndarray:
    """(LID_SAMPLES, 3): the skin above the open upper lid `lid` (points sorted by x), at evenly spaced
    places from the eye's left to its right corner: the mean of the brightest 30% of a band ABOVE_LID eye
    distances above the lid's edge (a few columns wide), smoothed across, its luma at least DARKEST_LID
    of the skin `under` the eye."""
    h, w = image.shape[:2]
    xs = np.linspace(lid[0, 0], lid[-1, 0], LID_SAMPLES)
    ys = np.interp(xs, lid[:, 0], lid[:, 1])
    half = max(1, int((lid[-1, 0] - lid[0, 0]) / LID_SAMPLES))
    cols = []
    for x, y in zip(xs, ys, strict=True):
        r0, r1 = int(max(0, y - ABOVE_LID[1] * s)), int(min(h, max(1, y - ABOVE_LID[0] * s)))
        c0, c1 = int(max(0, x - half)), int(min(w, x + half + 1))
        band = image[r0:r1, c0:c1].reshape(-1, 3).astype(np.float32)
        if len(band) == 0:
            cols.append(under)
            continue
        bright = band @ LUMA
        cols.append(band[bright >= np.percentile(bright, 70)].mean(axis=0))  # skin between lashes and rims
    raw = np.array(cols, np.float32)[:, None, :]
    across = np.asarray(cv2.blur(raw, (1, 3), borderType=cv2.BORDER_REPLICATE)[:, 0, :], np.float32)  # no stripes
    floor = DARKEST_LID * float(under @ LUMA)
    across *= np.maximum(1.0, floor / np.maximum(across @ LUMA, 1.0))[:, None]
    out: np.ndarray = np.clip(across, 0, 255).astype(np.float32)
    return out


def draw_eyelid(frame: UInt8Array, base: UInt8Array, lid: Eyelid, moved: np.ndarray, drop: np.ndarray,
                amount: float, scale: float) -> None:
    """`moved`: control points after the motion (the upper lid already lowered by `drop`, the blink's
    own displacement of the upper-lid rows); `amount`: blink 0..1. The lid's colour is `lid.across`
    (the skin above the open lid), its grain the skin under the lower lid of the reference `base`,
    mirrored upwards (same lens, light and grain), shaded as a lid over the eyeball."""
    if amount < 0.08:
        return
    edge = moved[lid.upper]  # the lid's lower edge, descending
    top = edge - drop  # where the open lid is
    low = moved[lid.lower]
    x0 = int(max(0, np.floor(min(top[:, 0].min(), low[:, 0].min()))))
    x1 = int(min(frame.shape[1], np.ceil(max(top[:, 0].max(), low[:, 0].max())) + 1))
    y0 = int(max(0, np.floor(top[:, 1].min()) - 2))
    y1 = int(min(frame.shape[0], np.ceil(max(edge[:, 1].max(), low[:, 1].max())) + 3))
    if x1 - x0 < 3 or y1 - y0 < 2:
        return
    xs = np.arange(x0, x1, dtype=np.float32)
    ty = np.interp(xs, top[:, 0], top[:, 1])[None, :] - 1.0
    ey = np.minimum(np.interp(xs, edge[:, 0], edge[:, 1]), np.interp(xs, low[:, 0], low[:, 1]))[None, :]
    inside = ((xs >= min(top[0, 0], low[0, 0])) & (xs <= max(top[-1, 0], low[-1, 0]))).astype(np.float32)[None, :]
    yy = np.arange(y0, y1, dtype=np.float32)[:, None]
    fill = np.clip((yy - ty) / 1.5 + 0.5, 0, 1) * np.clip((ey - yy) / 1.2 + 0.5, 0, 1) * inside
    depth = np.clip((yy - ty) / np.maximum(ey - ty, 1.0), 0, 1)
    ly = np.interp(xs, low[:, 0], low[:, 1])[None, :]
    src_y = np.clip(np.round(ly + 0.06 * scale + (ey - yy)), 0, base.shape[0] - 1).astype(np.intp)
    src_x = np.broadcast_to(np.clip(xs, 0, base.shape[1] - 1).astype(np.intp)[None, :], src_y.shape)
    skin = base[src_y, src_x].astype(np.float32)
    grain = skin - cv2.blur(skin, (5, 5))  # the skin's texture, not its colour
    t = np.clip((xs - top[0, 0]) / max(float(top[-1, 0] - top[0, 0]), 1.0), 0.0, 1.0) * (LID_SAMPLES - 1)
    tone = np.stack([np.interp(t, np.arange(LID_SAMPLES), lid.across[:, c]) for c in range(3)], axis=-1)[None]
    round_ = np.sqrt(np.clip(1.0 - (2.0 * t / (LID_SAMPLES - 1) - 1.0) ** 2, 0.0, 1.0))[None, :, None]
    # over the eyeball: lit in the middle, darker towards the corners and towards the lashes
    col = (tone + 0.7 * grain) * (0.97 - 0.12 * depth[..., None] ** 2) * (0.9 + 0.1 * round_)
    lash_w = max(0.8, 0.026 * scale)
    lash = np.exp(-(((yy - ey) / lash_w) ** 2)) * inside * min(1.0, amount * 1.4)
    a = (fill * min(1.0, (amount - 0.08) / 0.25) * 0.97)[..., None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    out = region * (1 - a) + col * a
    la = (lash * 0.75)[..., None]
    out = out * (1 - la) + lid.lash * la
    frame[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)
