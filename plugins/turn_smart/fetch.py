"""Setup step: take `smart-turn-v3.2-cpu.onnx` out of the `pipecat-ai==1.14.0` wheel (BSD-2), sha256-pinned.

`python -m plugins.turn_smart.fetch [--models DIR] [--wheels DIR]` (run by `make smart-turn-model`):
nothing to do when the model is in place; the wheel is downloaded with `pip download --no-deps`
only when it is not cached yet. pipecat itself is never installed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

from agent.files import sha256_file

__all__ = ["MODEL_FILE", "MODEL_SHA256", "default_model_path", "ensure_model"]

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
WHEEL_REQ = "pipecat-ai==1.14.0"
WHEEL_GLOB = "pipecat_ai-1.14.0-*.whl"
MEMBER = f"pipecat/audio/turn/smart_turn/data/{MODEL_FILE}"
MODELS_DIR = Path("~/.cache/flowact/models")
WHEELS_DIR = Path("~/.cache/flowact/wheels")


def default_model_path() -> Path:
    return (MODELS_DIR / MODEL_FILE).expanduser()



def cached_wheel(wheels: Path = WHEELS_DIR) -> Path | None:
    found = sorted(wheels.expanduser().glob(WHEEL_GLOB))
    return found[0] if found else None


def ensure_model(models: Path = MODELS_DIR, wheels: Path = WHEELS_DIR) -> Path:
    """The verified model file, extracted from the (cached or freshly downloaded) wheel if needed."""
    target = models.expanduser() / MODEL_FILE
    if target.is_file() and sha256_file(target) == MODEL_SHA256:
        return target
    wheel = cached_wheel(wheels)
    if wheel is None:
        wheels.expanduser().mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL_REQ, "-d", str(wheels.expanduser())],
            check=True,
        )
        wheel = cached_wheel(wheels)
        if wheel is None:
            raise SystemExit(f"pip download {WHEEL_REQ} left no {WHEEL_GLOB} in {wheels}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, tmp.open("wb") as out:
        while block := src.read(1 << 20):
            out.write(block)
    got = sha256_file(tmp)
    if got != MODEL_SHA256:
        tmp.unlink(missing_ok=True)
        raise SystemExit(f"{MEMBER} in {wheel.name} has sha256 {got}, expected {MODEL_SHA256}")
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--wheels", type=Path, default=WHEELS_DIR)
    args = ap.parse_args(argv)
    print(ensure_model(args.models, args.wheels))


if __name__ == "__main__":
    main()
