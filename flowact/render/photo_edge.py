"""A photo that does not cover the frame keeps what moves inside it.

Around such a photo the frame shows a still fill (flowact.framing), and the photo's edge is a feathered
ramp into it. The head and body warps know nothing of that edge: a tight crop's chin, dropping with the
jaw at the photo's bottom edge, dragged the edge down into the fill, a nod pulled the top edge along,
and a breath lifted the bottom edge. So each frame puts the fill back (copied under a mask) and
blends the ramp back by the photo's alpha, only where the warps can change anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowact.types import UInt8Array

__all__ = ["PhotoEdge", "photo_edge"]

EDGE_SLAB = 24  # rows: the feathered ramp is blended in slabs this tall (small boxes around a thin band)
BOX_COST = 1500  # pixels: one blend call more costs about as much as blending this many (bench/render.py)
Rect = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass(frozen=True, slots=True)
class PhotoEdge:
    """The fill's pixels (copied back under a mask: 20x cheaper than blending) and the feathered
    ramp's (blended back by the photo's alpha and 1 - alpha) that the warps may change."""

    copies: list[tuple[Rect, UInt8Array]]
    blends: list[tuple[Rect, np.ndarray, np.ndarray]]

    def restore(self, frame: UInt8Array, still: UInt8Array) -> None:
        """Put `still` (the rest frame) back into `frame` in place where the photo is absent, and in
        proportion along its edge."""
        for (y0, y1, x0, x1), fill in self.copies:
            cv2.copyTo(still[y0:y1, x0:x1], fill, frame[y0:y1, x0:x1])
        for (y0, y1, x0, x1), inside, outside in self.blends:
            region = frame[y0:y1, x0:x1]
            cv2.blendLinear(region, still[y0:y1, x0:x1], inside, outside, dst=region)


def photo_edge(photo: UInt8Array | None, roi: tuple[int, int, int, int], body: np.ndarray | None) -> PhotoEdge | None:
    """The edge to keep for a photo's alpha (`PortraitAnalysis.photo`, None when it covers the frame),
    given what the warps change: the head's ROI (x0, y0, x1, y1) and the body's moving pixels (an
    (H, W) bool mask, or None). None when there is nothing to keep."""
    if photo is None:
        return None
    h, w = photo.shape
    changes = np.zeros((h, w), bool) if body is None else body.copy()
    rx0, ry0, rx1, ry1 = roi
    changes[ry0:ry1, rx0:rx1] = True
    copies = []
    n, _, stats, _ = cv2.connectedComponentsWithStats((changes & (photo == 0)).view(np.uint8))
    for x0, y0, bw, bh, _area in stats[1:n]:
        copies.append(((y0, y0 + bh, x0, x0 + bw), (photo[y0 : y0 + bh, x0 : x0 + bw] == 0).view(np.uint8)))
    boxes: list[Rect] = []
    ramp = (changes & (photo > 0) & (photo < 255)).view(np.uint8)
    for top in range(0, h, EDGE_SLAB):
        n, _, stats, _ = cv2.connectedComponentsWithStats(ramp[top : top + EDGE_SLAB])
        slab = [(int(top + y0), int(top + y0 + bh), int(x0), int(x0 + bw)) for x0, y0, bw, bh, _a in stats[1:n]]
        _add_slab(boxes, slab)
    blends = []
    for y0, y1, x0, x1 in boxes:
        inside = photo[y0:y1, x0:x1].astype(np.float32) * np.float32(1 / 255)
        blends.append(((y0, y1, x0, x1), inside, 1.0 - inside))
    return PhotoEdge(copies, blends) if copies or blends else None


def _add_slab(boxes: list[Rect], slab: list[Rect]) -> None:
    """Add a slab's boxes of the ramp, each grown into the box above it when that costs less than a blend
    call more (a vertical edge is one tall box, not a box every EDGE_SLAB rows) and the grown box meets
    no other box: a ramp pixel blended twice would be pulled twice towards the fill."""
    def area(r: Rect) -> int:
        return (r[1] - r[0]) * (r[3] - r[2])

    def meets(a: Rect, b: Rect) -> bool:
        return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]

    for j, box in enumerate(slab):
        for i, b in enumerate(boxes):
            grown = (min(b[0], box[0]), max(b[1], box[1]), min(b[2], box[2]), max(b[3], box[3]))
            if (b[1] == box[0] and area(grown) <= area(b) + area(box) + BOX_COST
                    and not any(meets(grown, o) for o in (*boxes[:i], *boxes[i + 1 :], *slab[j + 1 :]))):
                boxes[i] = grown
                break
        else:
            boxes.append(box)
