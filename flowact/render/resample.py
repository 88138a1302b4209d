"""Bilinear resampling's blur, compensated once per portrait.

The renderer warps the portrait with one bilinear remap a frame (a cubic one costs 8x as much here: 4.5 ms
against 0.56 ms for the head region, bench/render.py's machine). A bilinear sample at a fractional offset f
mixes two neighbours by (1 - f, f): a blur of variance f (1 - f) along each axis, none at whole-pixel
offsets and most at half-pixel ones. A moving head's offsets vary smoothly across the face, so its pixels
take every fraction about equally (measured: a mean variance of 0.33 over the face, idle or speaking, where
uniform fractions give 1/3), and the warped face was softer than the photo around it: the Laplacian
variance of the face's middle 0.61-0.75 of the photo's, BRISQUE of the face 7-10 points worse on sharp
photos. So the image the warp reads is sharpened once by that mean blur (an unsharp mask, PRECOMP_AMOUNT at
PRECOMP_SIGMA), weighted by how far the head moves there (nothing where it stays still). Measured on
moving frames (tests/flowact/test_resample.py; BRISQUE as bench/fidelity.py scores it): the face's middle
0.92-0.99 of the photo's Laplacian variance; BRISQUE obama_smile 28.4 -> 21.7 (the photo 21.0), grace
18.7 -> 14.2 (11.3), franck_laugh 36.6 -> 28.6 (27.0); a cubic warp read 22.5, 14.2 and 30.1 at 8x the cost.
A frame whose head moves less than PRECOMP_FROM (where the blur is still small) reads the photo itself
(renderer.Renderer.render).
"""

from __future__ import annotations

import cv2
import numpy as np

from flowact.types import UInt8Array

__all__ = ["PRECOMP_AMOUNT", "PRECOMP_FROM", "PRECOMP_SIGMA", "precompensate"]

PRECOMP_AMOUNT = 0.6  # the middle of a moving face: 0.92-0.99 of the photo's Laplacian variance (0.61-0.75 unsharpened)
PRECOMP_SIGMA = 0.8  # pixels
PRECOMP_FROM = 0.5  # pixels: the head field's largest move over the face from which the sharpened image is read


def precompensate(image: UInt8Array, weight: np.ndarray, box: tuple[int, int, int, int]) -> UInt8Array:
    """`image` (H, W, C) sharpened inside `box` (x0, y0, x1, y1) by `weight` (the box's size; 0..1, where the
    warp moves it) times the mean bilinear blur; a copy. A constant channel (an alpha of 255) stays as it is."""
    x0, y0, x1, y1 = box
    pad = int(np.ceil(3 * PRECOMP_SIGMA))  # the blur's reach: the box is blurred with its surroundings
    h, w = image.shape[:2]
    px0, py0, px1, py1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    f = image[py0:py1, px0:px1].astype(np.float32)
    detail = (f - cv2.GaussianBlur(f, (0, 0), PRECOMP_SIGMA))[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
    out = image.copy()
    inner = f[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
    out[y0:y1, x0:x1] = np.clip(inner + (PRECOMP_AMOUNT * weight)[..., None] * detail + 0.5, 0, 255).astype(np.uint8)
    return out
