"""Files the agent verifies: one way to hash a (large) file."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path: str | Path, *, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in `block`-sized pieces (model files are hundreds of MB)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()
