"""CPU renderer: motion vector -> control-point displacements -> coarse grid -> dense map -> remap.

Per frame: the active parameters' precomputed grid fields are summed (a few axpys) on a coarse grid
over the head region, plus a smooth head-pose field (zero on the region's border: no seam);
`cv2.resize` makes it dense; the full-resolution local fields (lips' parting, eyelids) are sampled
where the head motion takes each pixel, so they ride along; one `cv2.remap` warps the portrait (it reads
the portrait sharpened by that resampling's mean blur where the head moves: render/resample.py).
A portrait whose mouth is open in the photo rests with its lips closed (render/rest_mouth.py); as the
jaw opens, that closing is undone first, so the photo's own mouth comes back up to its own aperture.
A mouth interior (cavity shaded to the corners, tongue, and a row of upper teeth unless the portrait
already shows its own: render/mouth_interior.py) is composited only into the gap that opened between
the lips, and closing eyelids are composited from the portrait's own under-eye skin (glasses-safe).
The torso rises with breathing, a shrug and a head tilt (render/body.py), composited by the person's
mask; everywhere else outside the head region the frame is the reference itself: the background never
moves.
Measured quality (tests/flowact/test_render.py): no fold-over at any extreme motion, mouth aperture
and blinks confirmed by re-detected landmarks; speed: bench/render.py.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from flowact.motion.params import MOTION_DIM, MotionChunk, P
from flowact.reference import MAX_YAW, PortraitAnalysis, face_pose
from flowact.render.body import build_body
from flowact.render.eyelids import build_eyelids, draw_eyelid
from flowact.render.head_field import HEAD_R1, HeadField
from flowact.render.local_fields import (
    LIP_AND_JAW,
    MOUTH_FIELD_PARAMS,
    TEETH_SHOW,
    LipSeam,
    LocalField,
    eye_fields,
    lip_seam,
    mouth_field,
    seam_fraction,
)
from flowact.render.mouth_interior import (
    along_mouth,
    cavity,
    colour_cast,
    own_interior,
    round_corners,
    rounded,
    upper_teeth,
)
from flowact.render.photo_edge import photo_edge
from flowact.render.resample import PRECOMP_FROM, precompensate
from flowact.render.rest_mouth import LUMA, Unwind, close_mouth, own_split, smiles, smoothstep
from flowact.render.rig import Rig, build_rig
from flowact.types import FloatArray, UInt8Array

__all__ = ["Renderer"]

GRID_STEP = 6  # coarse grid spacing in pixels
PRIOR = 0.08  # weight of "no displacement" in the interpolation (locality)
FRONTAL_YAW = 5.0  # degrees: a photo turned less than this turns as far either way
# degrees: an open-mouth photo turned less than this opens as wide beyond its own mouth as a frontal one;
# from 5 degrees, a talking film still turned 13 read its speech opening too small to tell from its rest
# (dlib: rest 0.043 of speech 0.080; from 15, 0.088, lip sync r 0.75 -> 0.79, identity 0.125 -> 0.136)
JAW_FRONTAL_YAW = 15.0
SMILE_SHOWS = 0.6  # an open-smile photo's rest closing undone at the agent's full smile
SEAM_FADE = 0.25  # the rest seam's shade (rest_mouth.SEAM_SHADOW) is gone once the lips have parted this share
SMILE_FROM = 0.15  # from this smile on (a listening face's slight smile keeps the lips closed)


class Renderer:
    """Renders frames of one analysed portrait. Stateless per frame (no drift over hours)."""

    def __init__(self, analysis: PortraitAnalysis) -> None:
        rest = close_mouth(analysis)
        self.reference = rest.photo  # the portrait as analysed (its inner lips where the image shows them)
        self.analysis = analysis = rest.analysis  # the rest pose: the same, with the lips closed if they were open
        self._interior = rest.interior  # the reference's own mouth interior, if it showed one
        self._unwind: Unwind | None = rest.unwind  # the rest closing warp, undone first when the jaw opens
        self.base = analysis.image
        self._base4: UInt8Array = np.asarray(cv2.cvtColor(self.base, cv2.COLOR_RGB2RGBA), np.uint8)  # what warps read
        self._photo4 = self._base4 if self._unwind is None else np.asarray(
            cv2.cvtColor(self._unwind.image, cv2.COLOR_RGB2RGBA), np.uint8)  # the open photo, to undo the closing
        self.h, self.w = self.base.shape[:2]
        self.rig: Rig = build_rig(analysis)
        self.head = HeadField(self.rig, analysis.face_box, self.w, self.h)  # the head pose's field
        s = self.rig.scale
        x0, y0, x1, y1 = analysis.face_box
        # the head ROI holds the whole head-pose ramp (so the warp is the identity on its border: no seam)
        # and the rig's reach below the chin
        hx, hy, hrx, hry = self.head.ellipse()
        rx0 = max(0, min(int(x0 - 0.8 * s), int(hx - HEAD_R1 * hrx) - 1))
        ry0 = max(0, min(int(y0 - 1.1 * s), int(hy - HEAD_R1 * hry) - 1))
        rx1 = min(self.w, max(int(x1 + 0.8 * s), int(hx + HEAD_R1 * hrx) + 2))
        ry1 = min(self.h, max(int(y1 + 0.9 * s), int(hy + HEAD_R1 * hry) + 2))
        self.roi = (rx0, ry0, rx1, ry1)
        gw = max(2, (rx1 - rx0) // GRID_STEP + 1)
        gh = max(2, (ry1 - ry0) // GRID_STEP + 1)
        gx = np.linspace(rx0, rx1 - 1, gw, dtype=np.float32)
        gy = np.linspace(ry0, ry1 - 1, gh, dtype=np.float32)
        GX, GY = np.meshgrid(gx, gy)
        self.grid_shape = (gh, gw)
        grid = np.stack([GX.ravel(), GY.ravel()], axis=1)  # (G, 2)
        pts = self.rig.points
        d2 = (grid[:, 0:1] - pts[None, :, 0]) ** 2 + (grid[:, 1:2] - pts[None, :, 1]) ** 2  # (G, C)
        wts = np.exp(-d2 / (2.0 * self.rig.sigma[None, :] ** 2)).astype(np.float32)
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
        self._grid_head = self.head.terms(grid)
        self.grid = grid
        # full-resolution identity coordinates for the ROI
        xs = np.arange(rx0, rx1, dtype=np.float32)
        ys = np.arange(ry0, ry1, dtype=np.float32)
        self.X, self.Y = np.meshgrid(xs, ys)
        # what a moving head's warp reads (and the open photo the rest closing is undone from): sharpened by
        # the bilinear resampling's mean blur where the head moves (render/resample.py)
        moves = self.head.weights(np.dstack([self.X, self.Y]).reshape(-1, 2))[0].reshape(self.X.shape)
        self._moving4 = precompensate(self._base4, moves, self.roi)
        self._face_terms = self.head.terms(np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1],
                                                      [(x0 + x1) / 2, (y0 + y1) / 2]], np.float32))
        self._photo4 = self._moving4 if self._unwind is None else precompensate(self._photo4, moves, self.roi)
        self.basis_flat = coarse_basis.reshape(MOTION_DIM, -1)  # (D, C*2)
        # the coarse field per parameter, precomputed on the grid: (P, G, 2) for the parameters that move
        # control points (head pose and breathing are analytic fields)
        active = [k for k in range(MOTION_DIM) if np.abs(coarse_basis[k]).max() > 0]
        self._grid_params = np.array(active, dtype=np.int64)
        n_c = coarse_basis.shape[1]
        per = self.weights @ coarse_basis[active].transpose(1, 0, 2).reshape(n_c, -1)  # (G, P*2): one GEMM
        self._grid_basis = np.ascontiguousarray(per.reshape(len(grid), len(active), 2).transpose(1, 0, 2))
        self._lip_basis_flat = (self.rig.basis - coarse_basis).reshape(MOTION_DIM, -1)  # what the local fields do
        self._init_mouth()
        self._jaw_unwound = self._unwind_span()
        # beyond the photo's own aperture, an open photo's mouth opens further from its own lips: a mouth
        # field on the photo's landmarks, split inside its interior (rest_mouth.own_split), so its upper
        # teeth stay with the upper jaw instead of dropping with the chin
        self._photo: tuple[Rig, LocalField, LipSeam, np.ndarray] | None = None
        if self._unwind is not None:
            prig = build_rig(self.reference)
            f = own_split(self.reference)
            self._photo = (prig, mouth_field(prig, self.w, self.h, f), lip_seam(prig, f),
                           prig.basis.reshape(MOTION_DIM, -1))
        self._lids = build_eyelids(self.rig, self.base)
        # a turned face is turned less further, nodded and tilted less (and an open mouth opened less
        # beyond the photo's own, see _effective): the warp has only the photo's view, and its far cheek
        # is already foreshortened (bench/fidelity.py --head, the turned Einstein, 22 degrees: identity
        # 0.208 -> 0.195, lip sync r 0.43 -> 0.57 with pitch and roll scaled too; dlib's landmarks and
        # descriptor read a rolled or nodded turned face worst)
        # (head_yaw + turns to the viewer's right, the photo's yaw + is turned to the viewer's left: a
        # negative head_yaw turns it further); within FRONTAL_YAW of frontal a photo turns as far either way
        self._photo_yaw = face_pose(self.reference.landmarks)[0]
        self._further = self._turned_less(FRONTAL_YAW)
        self._jaw_further = self._turned_less(JAW_FRONTAL_YAW)  # an open mouth opened beyond the photo's
        self._smile_photo = self._unwind is not None and smiles(self.reference)
        self._body = build_body(analysis, self.head.ellipse())
        self._edge = photo_edge(analysis.photo, self.roi,
                                None if self._body is None else self._body.moving((self.h, self.w)))

    def _turned_less(self, frontal: float) -> float:
        """The share of a motion a photo turned this far keeps: 1 within `frontal` degrees, down to 0.2
        at the largest turn accepted (MAX_YAW)."""
        return float(np.clip(1.0 - max(0.0, abs(self._photo_yaw) - frontal) / (MAX_YAW - frontal), 0.2, 1.0))

    # --- rendering ------------------------------------------------------------------------------
    def render(self, motion: FloatArray) -> UInt8Array:
        """One RGB frame (H, W, 3) for one motion row."""
        m, keep = self._effective(motion)
        disp_c = (m @ self.basis_flat).reshape(-1, 2)  # (C, 2)
        map_x, map_y = self._maps(m, disp_c, keep)
        rx0, ry0, rx1, ry1 = self.roi
        # the torso first (a new image when it moves), then the head warped on top of it; both resample
        # RGBA (OpenCV 5 remaps four channels about twice as fast as three), the frame is RGB
        # a head moved by half a pixel or more reads the photo sharpened by the mean bilinear blur; a still
        # one (or only the body or an eyelid moving) the photo itself
        moved_px = float(np.abs(self.head.displacement(self._face_terms, m)).max())
        read = self._moving4 if moved_px >= PRECOMP_FROM else self._base4
        src = read if self._body is None else self._body.apply(read, m)
        frame: UInt8Array = (self.base.copy() if src is read  # (the two differ only inside the head region)
                              else np.asarray(cv2.cvtColor(src, cv2.COLOR_RGBA2RGB), np.uint8))
        head = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(head, cv2.COLOR_RGBA2RGB, dst=frame[ry0:ry1, rx0:rx1])
        if keep < 0.999:
            self._unwind_mouth(frame, map_x, map_y, keep)
        moved = self._moved(m, disp_c)
        self._mouth(frame, m, disp_c, moved, keep)
        for lid in self._lids:
            b = float(m[lid.param])
            if b >= 0.08:
                drop = b * self.rig.basis[lid.param][lid.upper]
                draw_eyelid(frame, self.base, lid, moved, drop, b, self.rig.scale)
        if self._edge is not None:  # what moved stays inside the photo: the fill around it is still
            self._edge.restore(frame, self.base)
        return frame

    def still_mask(self) -> np.ndarray:
        """(H, W) bool: the pixels no motion ever changes (the background outside the head region and
        away from the person's body)."""
        out = np.ones((self.h, self.w), bool)
        rx0, ry0, rx1, ry1 = self.roi
        out[ry0:ry1, rx0:rx1] = False
        if self._body is not None:
            out &= ~self._body.moving((self.h, self.w))
        if self.analysis.photo is not None:
            out |= self.analysis.photo == 0  # the fill around a photo that does not cover the frame
        return out

    def warp_maps(self, motion: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """The dense backward map over the head ROI (`self.roi`): output pixel -> source x, y (of the rest
        image; an open-mouth photo's own mouth, when the jaw opens, is then sampled from the photo)."""
        m, keep = self._effective(motion)
        return self._maps(m, (m @ self.basis_flat).reshape(-1, 2), keep)

    def _mouth_fields(self, keep: float) -> list[tuple[LocalField, float]]:
        """The mouth field(s) and their weights: the rest image's while the rest closing stays, the
        photo's own once it is undone (both, weighted, while it is being undone)."""
        if self._photo is None or keep >= 1.0:
            return [(self.mouth, 1.0)]
        if keep <= 0.0:
            return [(self._photo[1], 1.0)]
        return [(self.mouth, keep), (self._photo[1], 1.0 - keep)]

    def _maps(self, m: FloatArray, disp_c: np.ndarray, keep: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The dense backward map over the head ROI, x and y planes (h, w) float32: output pixel -> source
        x, y. Planes, not one 2-channel map: OpenCV 5 resizes and remaps 1-channel float images faster
        (and the fields riding the head motion at exact, not 1/32-pixel, coordinates)."""
        nz = np.flatnonzero(np.abs(m[self._grid_params]) > 1e-5)
        d = np.zeros((len(self.grid), 2), np.float32)  # (G, 2)
        for k in nz:  # a few active parameters: axpy, not a (G, C) GEMM per frame
            d += m[self._grid_params[k]] * self._grid_basis[k]
        d += self.head.displacement(self._grid_head, m)
        gh, gw = self.grid_shape
        rx0, ry0, rx1, ry1 = self.roi
        size = (rx1 - rx0, ry1 - ry0)
        dx: np.ndarray = cv2.resize(np.ascontiguousarray(d[:, 0]).reshape(gh, gw), size, interpolation=cv2.INTER_LINEAR)
        dy: np.ndarray = cv2.resize(np.ascontiguousarray(d[:, 1]).reshape(gh, gw), size, interpolation=cv2.INTER_LINEAR)
        # the local fields ride on the head motion: each is sampled where the coarse field takes each output
        # pixel (d = coarse(X) + local(X - coarse(X))), so a nod or turn carries the lips' split line and
        # the eyelids along instead of leaving them behind. Every window reads the coarse field before any
        # local field is added to it.
        pending: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray]] = []
        for local, weight in (*self._mouth_fields(keep), *((e, 1.0) for e in self.eyes)):
            field = local.evaluate(m)
            if field is None:
                continue
            if weight < 1.0:
                field *= np.float32(weight)
            cx = min(max((local.x0 + local.x1) // 2 - rx0, 0), rx1 - rx0 - 1)
            cy = min(max((local.y0 + local.y1) // 2 - ry0, 0), ry1 - ry0 - 1)
            ox, oy = dx[cy, cx], dy[cy, cx]
            pad = 3 + int(0.1 * self.rig.scale)
            lx0, ly0 = max(int(local.x0 + ox) - pad, rx0), max(int(local.y0 + oy) - pad, ry0)
            lx1, ly1 = min(int(local.x1 + ox) + pad, rx1), min(int(local.y1 + oy) + pad, ry1)
            if lx1 <= lx0 or ly1 <= ly0:
                continue
            win = (slice(ly0 - ry0, ly1 - ry0), slice(lx0 - rx0, lx1 - rx0))
            pending.append((win, field, self.X[win] - dx[win] - local.x0, self.Y[win] - dy[win] - local.y0))
        for win, field, sx, sy in pending:
            fx, fy = cv2.split(field)
            dx[win] += cv2.remap(fx, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            dy[win] += cv2.remap(fy, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.subtract(self.X, dx, out=dx), np.subtract(self.Y, dy, out=dy)

    def render_chunk(self, chunk: MotionChunk) -> list[UInt8Array]:
        return [self.render(row) for row in chunk.values]

    def displaced_points(self, motion: FloatArray) -> np.ndarray:
        """Control-point positions after the motion (for tests and the mouth)."""
        m, _keep = self._effective(motion)
        disp_c = (m @ self.basis_flat).reshape(-1, 2)
        return self._moved(m, disp_c)

    def _moved(self, m: FloatArray, disp_c: np.ndarray) -> np.ndarray:
        """Where each control point's content lands in the output. The warp is a backward map (output X
        shows source X - d(X)), so the landing spot solves X = p + own(p) + head(X): two fixed-point
        steps, with the head field evaluated analytically at X."""
        pts = self.rig.points
        # lip points move by their intended displacement (the local mouth field is split exactly between
        # the inner lips, so sampling it there would give half of it)
        return self._land(pts + disp_c + (m @ self._lip_basis_flat).reshape(-1, 2), m)

    def _land(self, q: np.ndarray, m: FloatArray) -> np.ndarray:
        """Where content displaced to `q` by the face's own motion lands once the head motion is added."""
        x: np.ndarray = q
        for _ in range(2):
            x = q + self.head.displacement(self.head.terms(x), m)
        return x

    def _unwind_span(self) -> float:
        """The jaw_open over which the rest closing is undone: the opening whose jaw field alone would
        part the lips as far as the closing brought them together (inf when nothing was closed)."""
        if self._unwind is None:
            return math.inf
        ix = self.rig.index
        per_unit = float(self.rig.basis[P["jaw_open"], ix[14], 1] - self.rig.basis[P["jaw_open"], ix[13], 1])
        return max(self._unwind.gap / max(per_unit, 1e-3), 1e-3)

    def _effective(self, motion: FloatArray) -> tuple[FloatArray, float]:
        """The motion the fields apply and how much of the rest closing stays (1: all, 0: the photo's
        own mouth). jaw_open first undoes the closing; only the rest of it drops the jaw further, and
        on a photo turned beyond JAW_FRONTAL_YAW less so: beyond an open photo's own
        mouth the warp invents a wider one on a face caught mid-speech, which on a turned face cost
        its likeness most (bench/fidelity.py, the turned Einstein: its wide frames 0.27-0.31 from the
        photo at full rate, identity mean 0.202 -> 0.195). A closed photo's opening is all invented
        and keeps its full range (it must read as speech). On an open-smile photo (rest_mouth.smiles)
        the agent's smile beyond SMILE_FROM undoes the closing too (up to SMILE_SHOWS) and warps the
        corners up that much less: the photo's own smile comes back, teeth and all (dlib's distance to
        the photo at smile 0.8: 0.17-0.29, where the closed lips stretched into a smile read 0.24-0.40)."""
        m = np.asarray(motion, dtype=np.float32)
        yaw = float(m[P["head_yaw"]])
        if self._further < 1.0:  # a turned photo: turning further, nodding, tilting scaled down (see __init__)
            m = m.copy()
            if yaw * self._photo_yaw < 0.0:
                m[P["head_yaw"]] = yaw * self._further
            m[P["head_roll"]] *= self._further
            m[P["head_pitch"]] *= self._further
        jaw = float(m[P["jaw_open"]])
        smile = min(1.0, float(m[P["smile"]])) if self._smile_photo else 0.0
        if self._unwind is None or (jaw <= 0.0 and smile <= SMILE_FROM):
            return m, 1.0
        span = self._jaw_unwound
        m = m.copy()
        keep = 1.0
        if jaw > 0.0:
            m[P["jaw_open"]] = max(0.0, jaw - span) * self._jaw_further
            keep = max(0.0, 1.0 - jaw / span)
        if smile > SMILE_FROM:  # an open-smile photo: the agent's smile is the photo's own, partly unclosed
            shown = 1.0 - SMILE_SHOWS * (smile - SMILE_FROM) / (1.0 - SMILE_FROM)
            keep = min(keep, shown)
            m[P["smile"]] *= shown  # the photo's smile is coming back: warp the corners up less
        return m, keep

    def _unwind_mouth(self, frame: UInt8Array, map_x: np.ndarray, map_y: np.ndarray, keep: float) -> None:
        """Redraw the mouth patch from the photo with the rest closing scaled by `keep`: the patch's rest
        pixels are found through the frame's own warp (so head motion carries them), then the closing
        warp, scaled, takes them to the photo."""
        uw = self._unwind
        assert uw is not None
        rx0, ry0, rx1, ry1 = self.roi
        h, w = uw.offset.shape
        # where the patch lands: its corners and centre shifted by the warp there (X shows X - d(X)), padded
        # (nine samples: plain Python, numpy's per-call overhead cost 0.2 ms here)
        px = [min(max(v - rx0, 0), rx1 - rx0 - 1) for v in (uw.x0, uw.x0 + w - 1, uw.x0 + w // 2)]
        py = [min(max(v - ry0, 0), ry1 - ry0 - 1) for v in (uw.y0, uw.y0 + h - 1, uw.y0 + h // 2)]
        ox = [gx + rx0 - float(map_x[gy, gx]) for gy in py for gx in px]
        oy = [gy + ry0 - float(map_y[gy, gx]) for gy in py for gx in px]
        pad = 3 + int(0.06 * self.rig.scale)
        x0, y0 = max(int(uw.x0 + min(ox)) - pad, rx0), max(int(uw.y0 + min(oy)) - pad, ry0)
        x1, y1 = min(int(uw.x0 + w + max(ox)) + pad, rx1), min(int(uw.y0 + h + max(oy)) + pad, ry1)
        if x1 <= x0 or y1 <= y0:
            return
        qx = map_x[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
        qy = map_y[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0]
        dy = cv2.remap(uw.offset, qx - np.float32(uw.x0), qy - np.float32(uw.y0), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        sel = (dy != 0).view(np.uint8)
        if not sel.any():
            return
        own = cv2.cvtColor(cv2.remap(self._photo4, qx, cv2.scaleAdd(dy, float(keep), qy), cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE), cv2.COLOR_RGBA2RGB)
        fade = float(smoothstep(np.asarray((keep - 1.0 + SEAM_FADE) / SEAM_FADE)))
        if fade > 0.0:  # the rest seam's shade, going as the lips part
            wgt = cv2.remap(uw.shade, qx - np.float32(uw.x0), qy - np.float32(uw.y0), cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None] * np.float32(fade)
            own = np.clip(own * (1.0 - wgt) + uw.dark * wgt + 0.5, 0, 255).astype(np.uint8)
        cv2.copyTo(own, sel, frame[y0:y1, x0:x1])

    def _init_mouth(self) -> None:
        """The seam where the lips meet at rest (midway between the inner lip contours), as seen from the
        upper and from the lower lip; the portrait's lighting; whether its teeth already show."""
        ix, pts, s = self.rig.index, self.rig.points, self.rig.scale
        self._seam = lip_seam(self.rig, seam_fraction(self.rig))
        self._teeth_show = float(pts[ix[14], 1] - pts[ix[13], 1]) > TEETH_SHOW * s  # smiling portrait: real teeth
        nose = self.analysis.landmarks[4, :2]
        r = max(2, int(0.25 * s))
        nx, ny = int(nose[0]), int(nose[1])
        patch = self.base[max(0, ny - r) : ny + r, max(0, nx - 2 * r) : nx + 2 * r].astype(np.float32)
        luma = float(np.median(patch @ LUMA)) if patch.size else 170.0
        self._light = float(np.clip(luma / 175.0, 0.45, 1.1))
        self._cast = colour_cast(np.median(patch.reshape(-1, 3), axis=0)) if patch.size else np.ones(3, np.float32)
        # the photo's darkest tone (its 0.5th percentile over the face): the cavity's shadow is never darker
        # than the photo's own shadows (a faded or low-contrast photo has no black)
        fx0, fy0, fx1, fy1 = (int(v) for v in self.analysis.face_box)
        face = self.base[max(0, fy0) : fy1, max(0, fx0) : fx1].astype(np.float32)
        face_luma = face @ LUMA
        self._floor = float(np.percentile(face_luma, 0.5)) if face.size else 0.0
        # a black-and-white photo gets a grey mouth interior (its skin has no colour to speak of)
        self._grey = bool(patch.size) and float(np.median(np.ptp(patch, axis=-1))) < 6.0

    def mouth_gap(self, motion: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower edges (n, 2), sorted by x, of the gap between the lips (where the mouth
        interior is composited; equal at rest). For a photo whose mouth was open, the photo's own
        aperture comes back first and this is the gap opened beyond it."""
        m, keep = self._effective(motion)
        return self._gap(m, (m @ self.basis_flat).reshape(-1, 2), keep=keep)

    def _gap(self, m: FloatArray, disp_c: np.ndarray, moved: np.ndarray | None = None, keep: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray]:
        """The gap's edges (see `mouth_gap`): the rest seam moved with the lips; once the rest closing is
        undone, the photo's own split line moved with its lips (in between, the two weighted)."""
        moved = self._moved(m, disp_c) if moved is None else moved
        sm, rest = self._seam, self.rig.points
        up = sm.upper + (moved[sm.rows_u] - rest[sm.rows_u])
        lo = sm.lower + (moved[sm.rows_l] - rest[sm.rows_l])
        if self._photo is None or keep >= 1.0:
            return up, lo
        prig, _field, ps, basis = self._photo
        rows = np.concatenate([ps.rows_u, ps.rows_l])
        q = prig.points[rows] + (m @ basis).reshape(-1, 2)[rows]
        pm = self._land(q, m) - prig.points[rows]
        pu, pl = ps.upper + pm[: len(ps.rows_u)], ps.lower + pm[len(ps.rows_u) :]
        return keep * up + (1 - keep) * pu, keep * lo + (1 - keep) * pl

    def _mouth(self, frame: UInt8Array, m: FloatArray, disp_c: np.ndarray, moved: np.ndarray, keep: float = 1.0
               ) -> None:
        """Composite the mouth interior into the gap that opened between the lips: a dark cavity shaded
        towards the corners, a tongue when wide open and (unless the portrait already shows its teeth,
        which then move with the lips) a row of shaded upper teeth (render/mouth_interior.py). `keep`: how
        much of the rest closing stays; the photo's own interior is painted only at 1 (once the closing is
        undone its teeth show already)."""
        up, lo = self._gap(m, disp_c, moved, keep)
        s = self.rig.scale
        cx = float(up[:, 0].mean())
        gap = float(np.interp(cx, lo[:, 0], lo[:, 1]) - np.interp(cx, up[:, 0], up[:, 1]))
        alpha_gain = float(np.clip(gap / (0.04 * s), 0.0, 1.0))
        if alpha_gain <= 0.02:
            return
        x0 = int(max(0, np.floor(min(up[:, 0].min(), lo[:, 0].min())) - 2))
        x1 = int(min(frame.shape[1], np.ceil(max(up[:, 0].max(), lo[:, 0].max())) + 3))
        y0 = int(max(0, np.floor(min(up[:, 1].min(), lo[:, 1].min())) - 2))
        y1 = int(min(frame.shape[0], np.ceil(max(up[:, 1].max(), lo[:, 1].max())) + 3))
        if x1 - x0 < 4 or y1 - y0 < 3:
            return
        # the mouth's own frame: u along the line through its corners, v across it, so a tilted mouth
        # (a photo's tilted head, a head roll) is painted along its axis and its ends meet in points,
        # not cut off by the screen's columns
        c0, c1 = (up[0] + lo[0]) / 2, (up[-1] + lo[-1]) / 2
        ang = float(np.arctan2(c1[1] - c0[1], c1[0] - c0[0]))
        ca, sa = np.float32(np.cos(ang)), np.float32(np.sin(ang))
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(c0[0])  # (1, w)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(c0[1])  # (h, 1)
        xs, yy = dx * ca + dy * sa, dy * ca - dx * sa  # (h, w): u and v of every pixel of the box
        upr, lor = rounded(along_mouth(up - c0, ca, sa)), rounded(along_mouth(lo - c0, ca, sa))
        uy = np.interp(xs, upr[:, 0], upr[:, 1]).astype(np.float32)
        ly = np.interp(xs, lor[:, 0], lor[:, 1]).astype(np.float32)
        left, right = float(max(upr[0, 0], lor[0, 0])), float(min(upr[-1, 0], lor[-1, 0]))
        inside_x = np.clip(xs - left + 0.5, 0, 1) * np.clip(right - xs + 0.5, 0, 1)
        half = max(1.0, (right - left) / 2)
        tx = np.clip((xs - (left + right) / 2) / half, -1.0, 1.0)
        uy, ly = round_corners(uy, ly, tx)
        mask = np.clip((yy - uy) / 1.2 + 0.5, 0, 1) * np.clip((ly - yy) / 1.2 + 0.5, 0, 1) * inside_x
        col = cavity(yy, uy, ly, tx, s) * self._cast  # in the photo's colour grade
        if self._floor > 2.0:  # into the photo's own tonal range
            col = self._floor * self._cast + col * np.float32(1.0 - self._floor / 255.0)
        if self._interior is not None:
            if keep >= 1.0:
                own_interior(col, self._interior, xs, yy, uy, ly, left, right)
        elif not self._teeth_show:
            # centred on the face's midline (the upper lip's middle), off the gap's centre on a turned face
            mid = float(np.clip(along_mouth(moved[self.rig.index[13]][None, :2] - c0, ca, sa)[0, 0], left, right))
            teeth, tm = upper_teeth(xs, yy, uy, ly, mid, tx, s)
            col += (teeth * (self._light * self._cast) - col) * tm[..., None]
        if self._grey:
            col = np.repeat((col @ LUMA)[..., None], 3, axis=-1)
        a = (mask * alpha_gain * 0.97)[..., None]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(region * (1 - a) + col * a, 0, 255).astype(np.uint8)
