"""CPU renderer: motion vector -> control-point displacements -> coarse grid -> dense map -> remap.

Per frame: `disp = motion @ basis` (rig), interpolated to a coarse grid over the head region with
precomputed normalized Gaussian weights (one matrix product), plus a smooth head-pose field;
`cv2.resize` makes it dense and one `cv2.remap` warps the portrait. A synthesized mouth interior
(dark cavity, teeth band, tongue hint) is composited with feathered alpha where the lips part.
Outside the head region the frame is the reference itself: the background never moves.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from flowact.motion.params import MOTION_DIM, MotionChunk, P
from flowact.reference import PortraitAnalysis
from flowact.render.local_fields import LIP_AND_JAW, MOUTH_FIELD_PARAMS, eye_fields, mouth_field
from flowact.render.rig import LOWER_INNER_LIP, UPPER_INNER_LIP, Rig, build_rig
from flowact.types import FloatArray, UInt8Array

__all__ = ["Renderer"]

GRID_STEP = 6  # coarse grid spacing in pixels
PRIOR = 0.08  # weight of "no displacement" in the interpolation (locality)


class Renderer:
    """Renders frames of one analysed portrait. Stateless per frame (no drift over hours)."""

    def __init__(self, analysis: PortraitAnalysis) -> None:
        self.analysis = analysis
        self.base = analysis.image
        self.h, self.w = self.base.shape[:2]
        self.rig: Rig = build_rig(analysis)
        s = self.rig.scale
        x0, y0, x1, y1 = analysis.face_box
        rx0 = max(0, int(x0 - 0.8 * s))
        ry0 = max(0, int(y0 - 1.1 * s))
        rx1 = min(self.w, int(x1 + 0.8 * s))
        ry1 = min(self.h, int(y1 + 0.9 * s))
        self.roi = (rx0, ry0, rx1, ry1)
        gw = max(2, (rx1 - rx0) // GRID_STEP + 1)
        gh = max(2, (ry1 - ry0) // GRID_STEP + 1)
        gx = np.linspace(rx0, rx1 - 1, gw, dtype=np.float32)
        gy = np.linspace(ry0, ry1 - 1, gh, dtype=np.float32)
        GX, GY = np.meshgrid(gx, gy)
        self.grid_shape = (gh, gw)
        grid = np.stack([GX.ravel(), GY.ravel()], axis=1)  # (G, 2)
        d2 = ((grid[:, None, :] - self.rig.points[None, :, :]) ** 2).sum(-1)  # (G, C)
        wts = np.exp(-d2 / (2.0 * self.rig.sigma[None, :] ** 2))
        self.weights = (wts / (wts.sum(axis=1, keepdims=True) + PRIOR)).astype(np.float32)
        # lips/jaw and eyelid closure need fields that split along a line: full-resolution local fields
        self.mouth = mouth_field(self.rig, self.w, self.h)
        self.eyes = eye_fields(self.rig, self.w, self.h)
        coarse_basis = self.rig.basis.copy()
        lip_rows = [row for lid, row in self.rig.index.items() if lid in LIP_AND_JAW]
        for name in MOUTH_FIELD_PARAMS:
            coarse_basis[P[name]][lip_rows] = 0.0
        coarse_basis[P["blink_l"]] = 0.0
        coarse_basis[P["blink_r"]] = 0.0
        self.head_weight, self.bulge = self._head_fields(grid)
        self.grid = grid
        # full-resolution identity coordinates for the ROI
        xs = np.arange(rx0, rx1, dtype=np.float32)
        ys = np.arange(ry0, ry1, dtype=np.float32)
        self.X, self.Y = np.meshgrid(xs, ys)
        self.basis_flat = coarse_basis.reshape(MOTION_DIM, -1)  # (D, C*2)
        self._lip_basis_flat = (self.rig.basis - coarse_basis).reshape(MOTION_DIM, -1)  # what the local fields do
        self._upper = [self.rig.index[i] for i in UPPER_INNER_LIP]
        self._lower = [self.rig.index[i] for i in LOWER_INNER_LIP]
        rest = self.rig.points
        self._rest_gap = float(rest[self.rig.index[14], 1] - rest[self.rig.index[13], 1])

    # --- fields ---------------------------------------------------------------------------------
    def _head_fields(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.rig.scale
        x0, y0, x1, y1 = self.analysis.face_box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.15 * s
        rx, ry = (x1 - x0) / 2 + 0.35 * s, (y1 - y0) / 2 + 0.55 * s
        r = np.sqrt(((grid[:, 0] - cx) / rx) ** 2 + ((grid[:, 1] - cy) / ry) ** 2)
        weight = np.clip((1.45 - r) / 0.6, 0.0, 1.0)
        weight = weight * weight * (3 - 2 * weight)  # smoothstep
        fx, fy = (x1 - x0) / 2, (y1 - y0) / 2
        rf = np.sqrt(((grid[:, 0] - cx) / fx) ** 2 + ((grid[:, 1] - cy - 0.15 * s) / fy) ** 2)
        bulge = np.sqrt(np.clip(1.0 - rf**2, 0.0, 1.0))
        return weight.astype(np.float32), bulge.astype(np.float32)

    def _head_displacement(self, pts: np.ndarray, weight: np.ndarray, bulge: np.ndarray, m: FloatArray) -> np.ndarray:
        s = self.rig.scale
        yaw, pitch, roll = (math.radians(float(m[P[k]])) for k in ("head_yaw", "head_pitch", "head_roll"))
        c = self.rig.head_centre
        rel = pts - c
        cr, sr = math.cos(roll), math.sin(roll)
        rot = np.stack([cr * rel[:, 0] - sr * rel[:, 1], sr * rel[:, 0] + cr * rel[:, 1]], axis=1)
        d = rot - rel
        d[:, 0] += yaw * 1.1 * s * (0.35 + bulge)
        d[:, 1] += pitch * 1.1 * s * (0.35 + bulge) + 0.006 * s * float(m[P["breath"]])
        return d * weight[:, None]

    # --- rendering ------------------------------------------------------------------------------
    def render(self, motion: FloatArray) -> UInt8Array:
        """One RGB frame (H, W, 3) for one motion row."""
        m = np.asarray(motion, dtype=np.float32)
        disp_c = (m @ self.basis_flat).reshape(-1, 2)  # (C, 2)
        d = self.weights @ disp_c  # (G, 2)
        d += self._head_displacement(self.grid, self.head_weight, self.bulge, m)
        gh, gw = self.grid_shape
        rx0, ry0, rx1, ry1 = self.roi
        dense = cv2.resize(d.reshape(gh, gw, 2), (rx1 - rx0, ry1 - ry0), interpolation=cv2.INTER_LINEAR)
        for local in (self.mouth, *self.eyes):
            field = local.evaluate(m)
            if field is not None:
                lx0, ly0 = max(local.x0, rx0), max(local.y0, ry0)
                lx1, ly1 = min(local.x1, rx1), min(local.y1, ry1)
                dense[ly0 - ry0 : ly1 - ry0, lx0 - rx0 : lx1 - rx0] += field[
                    ly0 - local.y0 : ly1 - local.y0, lx0 - local.x0 : lx1 - local.x0
                ]
        map_x = self.X - dense[:, :, 0]
        map_y = self.Y - dense[:, :, 1]
        frame = self.base.copy()
        frame[ry0:ry1, rx0:rx1] = cv2.remap(self.base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._mouth(frame, m, disp_c)
        return frame

    def render_chunk(self, chunk: MotionChunk) -> list[UInt8Array]:
        return [self.render(row) for row in chunk.values]

    def displaced_points(self, motion: FloatArray) -> np.ndarray:
        """Control-point positions after the motion (for tests and the mouth)."""
        m = np.asarray(motion, dtype=np.float32)
        disp_c = (m @ self.basis_flat).reshape(-1, 2)
        return self._moved(m, disp_c)

    def _moved(self, m: FloatArray, disp_c: np.ndarray) -> np.ndarray:
        pts = self.rig.points
        gx = np.clip(((pts[:, 0] - self.roi[0]) / GRID_STEP).astype(int), 0, self.grid_shape[1] - 1)
        gy = np.clip(((pts[:, 1] - self.roi[1]) / GRID_STEP).astype(int), 0, self.grid_shape[0] - 1)
        g = gy * self.grid_shape[1] + gx
        head = self._head_displacement(pts, self.head_weight[g], self.bulge[g], m)
        # lip points move by their intended displacement (the local mouth field is split exactly between
        # the inner lips, so sampling it there would give half of it)
        return pts + disp_c + (m @ self._lip_basis_flat).reshape(-1, 2) + head

    def _mouth(self, frame: UInt8Array, m: FloatArray, disp_c: np.ndarray) -> None:
        moved = self._moved(m, disp_c)
        upper = moved[self._upper]
        lower = moved[self._lower]
        gap = float(moved[self.rig.index[14], 1] - moved[self.rig.index[13], 1]) - self._rest_gap
        s = self.rig.scale
        alpha_gain = float(np.clip(gap / (0.05 * s), 0.0, 1.0))
        if alpha_gain <= 0.02:
            return
        poly = np.concatenate([upper, lower[::-1]], axis=0)
        x0 = int(max(0, np.floor(poly[:, 0].min()) - 4))
        y0 = int(max(0, np.floor(poly[:, 1].min()) - 4))
        x1 = int(min(frame.shape[1], np.ceil(poly[:, 0].max()) + 5))
        y1 = int(min(frame.shape[0], np.ceil(poly[:, 1].max()) + 5))
        if x1 - x0 < 4 or y1 - y0 < 3:
            return
        hh, ww = y1 - y0, x1 - x0
        local = ((poly - (x0, y0)) * 4).astype(np.int32)
        mask = np.zeros((hh, ww), np.uint8)
        cv2.fillPoly(mask, [local], 255, lineType=cv2.LINE_AA, shift=2)
        # teeth: a band under the upper lip, fading in as the mouth opens
        teeth = np.zeros((hh, ww), np.uint8)
        band = 0.06 * s
        up_local = upper - (x0, y0)
        teeth_poly = np.concatenate([up_local, (up_local + (0, band))[::-1]], axis=0)
        cv2.fillPoly(teeth, [(teeth_poly * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
        tongue = np.zeros((hh, ww), np.uint8)
        lo_c = lower[len(lower) // 2] - (x0, y0)
        axes = (max(1, int(0.28 * s)), max(1, int(0.09 * s)))
        cv2.ellipse(tongue, (int(lo_c[0]), int(lo_c[1] - 0.02 * s)), axes, 0, 180, 360, 255, -1, cv2.LINE_AA)
        k = max(3, int(0.05 * s)) | 1
        a = cv2.GaussianBlur(mask, (k, k), 0).astype(np.float32) / 255.0 * alpha_gain * 0.95
        tm = (teeth.astype(np.float32) / 255.0) * (mask.astype(np.float32) / 255.0)
        tg = (tongue.astype(np.float32) / 255.0) * (mask.astype(np.float32) / 255.0) * (1 - tm)
        ys = np.linspace(0.0, 1.0, hh, dtype=np.float32)[:, None]
        cavity = np.empty((hh, ww, 3), np.float32)
        cavity[..., 0] = 38 + 30 * ys
        cavity[..., 1] = 12 + 8 * ys
        cavity[..., 2] = 14 + 8 * ys
        teeth_rgb = np.array([196, 188, 176], np.float32)
        tongue_rgb = np.array([150, 62, 66], np.float32)
        tooth_gain = float(np.clip((gap - 0.03 * s) / (0.1 * s), 0.0, 1.0)) * 0.75
        tm = cv2.GaussianBlur(tm, (k, k), 0)
        cavity = cavity * (1 - tm[..., None] * tooth_gain) + teeth_rgb * (tm[..., None] * tooth_gain)
        cavity = cavity * (1 - tg[..., None] * 0.7) + tongue_rgb * (tg[..., None] * 0.7)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        out = region * (1 - a[..., None]) + cavity * a[..., None]
        frame[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)
