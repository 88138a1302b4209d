"""Run every benchmark in bench/ one after another and print their output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["control.py", "render.py", "neural.py", "engines.py", "pipeline.py"]

if __name__ == "__main__":
    failed = []
    for name in ORDER + sorted(p.name for p in HERE.glob("*.py") if p.name not in ORDER and p.name != "run_all.py"):
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n=== bench/{name} ===", flush=True)
        rc = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        if rc:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
        sys.exit(1)
