"""The rig: control points on the face and how each motion parameter moves them.

Built once per portrait from its landmarks. A motion row (MOTION_PARAMS) becomes control-point
displacements by one matrix product: `disp = motion @ basis` with basis (MOTION_DIM, C, 2) in
pixels. Head pose and breathing are handled separately as smooth whole-head/whole-body fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowact.faces import LEFT_EYE, RIGHT_EYE
from flowact.motion.params import MOTION_DIM, P
from flowact.reference import PortraitAnalysis, face_roll

__all__ = ["Rig", "build_rig", "UPPER_INNER_LIP", "LOWER_INNER_LIP", "UPPER_OUTER_LIP", "LOWER_OUTER_LIP"]

# MediaPipe face-mesh indices.
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324)
JAW = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397)
L_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
L_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
R_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
R_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)
L_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
R_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
L_INNER_BROW = (107, 55, 66, 65)
R_INNER_BROW = (336, 285, 296, 295)
CHEEKS = (50, 280, 205, 425, 187, 411)
L_IRIS = (468, 469, 470, 471, 472)
R_IRIS = (473, 474, 475, 476, 477)
STATIC = (1, 4, 6, 168, 197, 195, 5, 33, 133, 362, 263, 10, 151, 9, 234, 454, 93, 323, 127, 356)

MOUTH_CORNERS = {61: -1.0, 291: 1.0, 78: -1.0, 308: 1.0}


@dataclass(frozen=True, slots=True)
class Rig:
    points: np.ndarray  # (C, 2) rest positions of the control points, pixels
    sigma: np.ndarray  # (C,) influence radius of each point, pixels
    basis: np.ndarray  # (MOTION_DIM, C, 2) displacement per unit of each parameter, pixels
    index: dict[int, int]  # landmark id -> control point row
    scale: float  # eye distance in pixels
    head_centre: np.ndarray  # (2,) pivot for head roll (mid-face)
    depth: np.ndarray  # (C,) landmark depth (for yaw parallax), pixels, nearer = negative


def build_rig(a: PortraitAnalysis) -> Rig:
    """The rig in the face's own frame: the landmarks are turned about the eye midpoint until the eyes
    are level, the motions defined there (a jaw drops along the face, not the screen), and every
    displacement turned back to the image (a framed photo keeps its head's tilt up to KEEP_ROLL)."""
    turn = np.radians(face_roll(a.landmarks))
    back = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]], np.float32)
    pivot = a.landmarks[[*LEFT_EYE, *RIGHT_EYE], :2].mean(axis=0)  # the eye midpoint
    lm = a.landmarks.copy()
    lm[:, :2] = (a.landmarks[:, :2] - pivot) @ back + pivot  # row vectors @ back: turned by -turn
    s = a.eye_distance
    groups: list[tuple[tuple[int, ...], float]] = [
        (UPPER_OUTER_LIP, 0.16), (LOWER_OUTER_LIP, 0.16), (UPPER_INNER_LIP, 0.10), (LOWER_INNER_LIP, 0.10),
        (JAW, 0.35), (L_UPPER_LID, 0.07), (L_LOWER_LID, 0.06), (R_UPPER_LID, 0.07), (R_LOWER_LID, 0.06),
        (L_BROW, 0.14), (R_BROW, 0.14), (CHEEKS, 0.22), (L_IRIS, 0.04), (R_IRIS, 0.04), (STATIC, 0.12),
    ]
    ids: list[int] = []
    sig: list[float] = []
    for grp, sg in groups:
        for i in grp:
            if i not in ids:
                ids.append(i)
                sig.append(sg * s)
    index = {lid: row for row, lid in enumerate(ids)}
    basis = np.zeros((MOTION_DIM, len(ids), 2), np.float32)

    def move(param: str, lids: tuple[int, ...] | list[int], dx: float, dy: float) -> None:
        for lid in lids:
            basis[P[param], index[lid]] += (dx * s, dy * s)

    mouth_c = lm[[61, 291], :2].mean(axis=0)
    lower = set(LOWER_OUTER_LIP) | set(LOWER_INNER_LIP)
    # jaw_open: lower lip and chin drop; jaw points drop by how far below the mouth corners they are
    # the lower lip drops most in the middle and little at the corners (a lens, not a box)
    half_w = max(1.0, float(abs(lm[291, 0] - lm[61, 0])) / 2)
    for lid in lower:
        t = min(1.0, abs(float(lm[lid, 0] - mouth_c[0])) / half_w)
        prof = float(np.cos(0.5 * np.pi * t))
        keep = 0.3 if lid in LOWER_INNER_LIP else 0.5
        basis[P["jaw_open"], index[lid]] += (0.0, 0.42 * s * (keep + (1 - keep) * prof))
    move("jaw_open", [13, 82, 312, 0, 37, 267], 0.0, -0.04)
    for lid in JAW:
        below = float(np.clip((lm[lid, 1] - mouth_c[1]) / (0.9 * s), 0.0, 1.0))
        basis[P["jaw_open"], index[lid]] += (0.0, 0.45 * s * below)
    for lid, side in MOUTH_CORNERS.items():
        move("jaw_open", [lid], -0.03 * side, 0.12)
        # rounding pulls only the corners in (bending the whole line inwards would leave the lips split
        # beyond the new corners, which the parting field cannot follow)
        move("mouth_round", [lid], -0.14 * side, 0.0)
        move("lip_funnel", [lid], -0.09 * side, 0.0)
    # smile, frown and wide bend the whole lip line: each lip point takes the corner's motion scaled by
    # (x offset from the centre / half width)^2, so the lips curve instead of the corners alone moving
    # (which would open a thin wedge between a moved corner and its unmoved neighbours)
    all_lips = [*UPPER_OUTER_LIP, *LOWER_OUTER_LIP, *UPPER_INNER_LIP, *LOWER_INNER_LIP]
    for lid in dict.fromkeys(all_lips):
        t = float(np.clip((lm[lid, 0] - mouth_c[0]) / half_w, -1.0, 1.0))
        side, w = float(np.sign(t)), t * t
        move("mouth_wide", [lid], 0.13 * side * w, -0.01 * w)
        move("smile", [lid], 0.12 * side * w, -0.15 * w)
        move("frown", [lid], 0.02 * side * w, 0.12 * w)
    move("mouth_round", [0, 37, 267, 13, 82, 312], 0.0, -0.04)
    move("mouth_round", [17, 84, 314, 14, 87, 317], 0.0, 0.05)
    move("lip_funnel", [0, 37, 267], 0.0, -0.05)
    move("lip_funnel", [17, 84, 314], 0.0, 0.05)
    move("lip_press", list(UPPER_INNER_LIP[1:-1]), 0.0, 0.02)
    move("lip_press", list(LOWER_INNER_LIP) + list(LOWER_OUTER_LIP), 0.0, -0.03)
    move("upper_lip_raise", list(UPPER_OUTER_LIP[1:-1]) + list(UPPER_INNER_LIP[1:-1]), 0.0, -0.06)
    move("smile", list(CHEEKS), 0.0, -0.07)
    move("smile", list(L_LOWER_LID) + list(R_LOWER_LID), 0.0, -0.02)
    move("cheek_raise", list(CHEEKS), 0.0, -0.05)
    move("cheek_raise", list(L_LOWER_LID) + list(R_LOWER_LID), 0.0, -0.03)
    move("brow_raise", list(L_BROW) + list(R_BROW), 0.0, -0.12)
    move("brow_raise", list(L_UPPER_LID) + list(R_UPPER_LID), 0.0, -0.02)
    move("brow_inner_up", list(L_INNER_BROW) + list(R_INNER_BROW), 0.0, -0.09)
    move("brow_furrow", list(L_INNER_BROW), 0.05, 0.05)
    move("brow_furrow", list(R_INNER_BROW), -0.05, 0.05)
    move("eye_wide", list(L_UPPER_LID) + list(R_UPPER_LID), 0.0, -0.035)
    move("eye_wide", list(L_BROW) + list(R_BROW), 0.0, -0.03)
    # blinks: each upper-lid point travels down to the lower lid below it
    for upper, lower_lid, param in ((L_UPPER_LID, L_LOWER_LID, "blink_l"), (R_UPPER_LID, R_LOWER_LID, "blink_r")):
        low = lm[list(lower_lid), :2]
        for lid in upper:
            j = int(np.argmin(np.abs(low[:, 0] - lm[lid, 0])))
            gap = float(low[j, 1] - lm[lid, 1])
            basis[P[param], index[lid]] += (0.0, 0.92 * gap)
    for lid in L_IRIS + R_IRIS:
        basis[P["gaze_x"], index[lid]] += (0.12 * s, 0.0)
        basis[P["gaze_y"], index[lid]] += (0.0, 0.05 * s)
    jaw_l, jaw_r = lm[172, :2], lm[397, :2]
    # the roll pivot: mid-face, about the nose's base (a real tilt turns about the upper neck, but for the
    # few degrees a head tilts, turning about mid-face looks the same and moves the hair's top half as far,
    # so the ring where the head field fades to the still background shears half as much)
    head_centre = (jaw_l + jaw_r) / 2 - np.array([0.0, 1.2 * s])
    # back to the image: the rest points as detected, every displacement turned by the head's tilt
    basis = (basis @ back.T).astype(np.float32)
    head_centre = ((head_centre - pivot) @ back.T + pivot).astype(np.float32)
    return Rig(points=a.landmarks[ids, :2].astype(np.float32), sigma=np.array(sig, np.float32), basis=basis,
               index=index, scale=s, head_centre=head_centre, depth=lm[ids, 2].astype(np.float32))
