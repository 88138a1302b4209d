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
    blends = []
    ramp = (changes & (photo > 0) & (photo < 255)).view(np.uint8)
    for top in range(0, h, EDGE_SLAB):
        n, _, stats, _ = cv2.connectedComponentsWithStats(ramp[top : top + EDGE_SLAB])
        for x0, y0, bw, bh, _area in stats[1:n]:
            y0 += top
            inside = photo[y0 : y0 + bh, x0 : x0 + bw].astype(np.float32) * np.float32(1 / 255)
            blends.append(((y0, y0 + bh, x0, x0 + bw), inside, 1.0 - inside))
    return PhotoEdge(copies, blends) if copies or blends else None
