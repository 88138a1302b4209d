"""Cut every face of group photos into its own head-and-shoulders portrait, for bench/fidelity.py.

    npm pack @vladmandic/face-api@1.7.15 tracking@1.1.3   # then untar both
    python bench/group_crops.py /tmp/crops package/demo/sample{1,2,3,4,5,6}.jpg package/examples/assets/faces.jpg
    python bench/fidelity.py --head --dir /tmp/crops --only p00 ...

Faces are found as the analysis finds them (flowact.faces.find_faces) and numbered p00, p01, ... photo
by photo, left to right. Each crop is 2.3 face heights (forehead to chin) wide around the face's centre,
from 1.3 above it to 1.9 below it, clipped by the photo: a neighbour's head or shoulder may show at its
edge, as in a real cut-out. The crops are for measuring, not for the repository (the photos' licence
is not stated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDE, ABOVE, BELOW = 1.15, 1.3, 1.9  # face heights left and right of, above and below the face's centre


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder for the crops (created)")
    ap.add_argument("photos", nargs="+", help="group photos")
    args = ap.parse_args()
    from PIL import Image

    from flowact.faces import face_size, find_faces
    from flowact.reference import load_image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k = 0
    for photo in args.photos:
        img = load_image(photo)
        h, w = img.shape[:2]
        for f in sorted(find_faces(img), key=lambda q: float(q[:, 0].mean())):
            size = face_size(f)
            cx, cy = float(f[:, 0].mean()), float(f[:, 1].mean())
            x0, x1 = int(max(0, cx - WIDE * size)), int(min(w, cx + WIDE * size))
            y0, y1 = int(max(0, cy - ABOVE * size)), int(min(h, cy + BELOW * size))
            Image.fromarray(np.ascontiguousarray(img[y0:y1, x0:x1])).save(out / f"p{k:02d}.jpg", quality=95)
            print(f"p{k:02d}  {Path(photo).name}  face {size:.0f} px  box ({x0}, {y0}, {x1}, {y1})")
            k += 1


if __name__ == "__main__":
    main()
