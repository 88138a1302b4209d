"""MediaPipe is imported without matplotlib (flowact.faces._import_mediapipe): its package init pulls
in matplotlib and pyplot (0.5-0.6 s of a cold portrait's first frame) for a plotting helper we never
call. Measured in a fresh interpreter, since imports are per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from flowact.faces import _import_mediapipe
mp = _import_mediapipe()
assert "matplotlib" not in sys.modules and "matplotlib.pyplot" not in sys.modules, "matplotlib was imported"
assert callable(mp.solutions.face_mesh.FaceMesh)
from mediapipe.python.solutions import drawing_utils
figure = drawing_utils.plt.figure  # the helper still works: the real pyplot loads on first use
real = sys.modules["matplotlib.pyplot"]
assert getattr(real, "__file__", None) and real.figure is figure, "the stand-in stayed"
import matplotlib
assert getattr(matplotlib, "__file__", None) and matplotlib.pyplot is real
print("ok")
"""


def test_mediapipe_imports_without_matplotlib_and_its_drawing_helpers_still_work() -> None:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
