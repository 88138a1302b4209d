"""Files named by remote input (a portrait in dispatch metadata, a knowledge-base document, a chat
command) stay inside the directory the operator allowed.

`safe_path(root, name)` is the one check: use it for every path that a room participant, a dispatch
request, an MQTT publisher or an LLM can influence, before opening anything.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from agent.errors import InputError

__all__ = ["MAX_NAME_CHARS", "safe_path"]

MAX_NAME_CHARS = 255


def safe_path(root: str | Path, name: str) -> Path:
    """`root/name`, resolved, if it stays inside `root` (symlinks followed); else InputError.

    `name` must be a relative path (`portraits/ava.jpg` is fine): absolute paths, `..` that climbs out,
    a symlink inside `root` that points outside it, NUL or other control characters, backslashes and
    over-long names are refused. The file need not exist yet (the caller reports a missing file).
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise InputError(f"file name must be 1..{MAX_NAME_CHARS} characters")
    shown = name.encode("unicode_escape").decode()[:80]
    if any(ord(c) < 32 or c == "\x7f" for c in name) or "\\" in name:
        raise InputError(f"file name {shown!r} contains control characters or a backslash")
    if PurePosixPath(name).is_absolute():
        raise InputError(f"file name {shown!r} must be relative to the allowed directory")
    try:
        base = Path(root).resolve()
        target = (base / name).resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop (Python < 3.13)
        raise InputError(f"file name {shown!r} cannot be resolved: {e.__class__.__name__}") from None
    if target == base or not target.is_relative_to(base):
        raise InputError(f"file name {shown!r} is outside the allowed directory")
    return target
