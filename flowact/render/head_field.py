"""The head pose's field: the analytic displacement a head turn, nod, tilt and breath give the portrait.

Over an ellipse around the head it weighs 1 inside HEAD_R0 and fades smoothly to 0 at HEAD_R1 (and at the
frame's own edges), so the warp is the identity on the head region's border: no seam. Within it, a roll
turns about the rig's head centre, and yaw and pitch move the face surface by its depth in front of the
neck's pivot (a paraboloid bulge over the face box, most at the nose). The field at any set of points is
split into per-point terms once (`terms`) and combined per frame (`displacement`): a few axpys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flowact.motion.params import P
from flowact.render.rig import Rig
from flowact.types import FloatArray

__all__ = ["HEAD_R0", "HEAD_R1", "HeadField"]

HEAD_R0, HEAD_R1 = 0.75, 1.55  # head-pose weight: 1 inside r0, smoothly 0 at r1 (ellipse radii units)


@dataclass(frozen=True, slots=True)
class HeadField:
    rig: Rig
    face_box: tuple[float, float, float, float]  # x0, y0, x1, y1
    w: int  # the frame's size
    h: int

    def ellipse(self) -> tuple[float, float, float, float]:
        """The head ellipse (cx, cy, rx, ry): the face box widened over the hair and the ears."""
        s = self.rig.scale
        x0, y0, x1, y1 = self.face_box
        return (x0 + x1) / 2, (y0 + y1) / 2 - 0.15 * s, (x1 - x0) / 2 + 0.35 * s, (y1 - y0) / 2 + 0.55 * s

    def weights(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weight, bulge) at points (N, 2): how much the head pose moves each (0..1) and the face's bulge."""
        s = self.rig.scale
        x0, y0, x1, y1 = self.face_box
        cx, cy, rx, ry = self.ellipse()
        r = np.sqrt(((pts[:, 0] - cx) / rx) ** 2 + ((pts[:, 1] - cy) / ry) ** 2)
        weight = np.clip((HEAD_R1 - r) / (HEAD_R1 - HEAD_R0), 0.0, 1.0)
        # and 0 at the frame's own edges (a head near the top edge moves without pulling pixels in from
        # beyond the frame)
        edge = np.minimum.reduce([pts[:, 0], self.w - 1 - pts[:, 0], pts[:, 1], self.h - 1 - pts[:, 1]])
        weight = weight * np.clip(edge / (0.8 * s), 0.0, 1.0)
        weight = weight * weight * (3 - 2 * weight)  # smoothstep
        fx, fy = (x1 - x0) / 2, (y1 - y0) / 2
        rf = np.sqrt(((pts[:, 0] - cx) / fx) ** 2 + ((pts[:, 1] - cy - 0.15 * s) / fy) ** 2)
        bulge = np.clip(1.0 - rf**2, 0.0, 1.0)  # a paraboloid: finite slope at the face edge (no fold)
        return weight.astype(np.float32), bulge.astype(np.float32)

    def terms(self, pts: np.ndarray) -> np.ndarray:
        """(4, N) float32: what the field at `pts` is made of, each weighted by its weight there: the offset
        from the head centre (x, y), the face surface's depth in front of the neck's pivot (about 0.2-0.8
        eye distances, more at the nose) and the weight itself."""
        weight, bulge = self.weights(pts)
        rel = pts - self.rig.head_centre
        depth = self.rig.scale * (0.2 + 0.6 * bulge)
        return np.stack([rel[:, 0] * weight, rel[:, 1] * weight, depth * weight, weight]).astype(np.float32)

    def displacement(self, terms: np.ndarray, m: FloatArray) -> np.ndarray:
        """(N, 2) the displacement for a motion row from its terms (`terms`): a roll about the head centre,
        yaw and pitch moving the face surface by its depth, and a breath's slight rise."""
        yaw, pitch, roll = (math.radians(float(m[P[k]])) for k in ("head_yaw", "head_pitch", "head_roll"))
        c1, sr = np.float32(math.cos(roll) - 1.0), np.float32(math.sin(roll))
        out = np.empty((terms.shape[1], 2), np.float32)
        out[:, 0] = c1 * terms[0] - sr * terms[1] + np.float32(math.sin(yaw)) * terms[2]
        out[:, 1] = (sr * terms[0] + c1 * terms[1] + np.float32(math.sin(pitch)) * terms[2]
                     + np.float32(0.006 * self.rig.scale * float(m[P["breath"]])) * terms[3])
        return out
