"""Crash-safe recording files: a fragmented MP4 while writing, a normal MP4 when finished.

While a session runs, the sink writes `<path>.partial` as a fragmented MP4 (`empty_moov`: the header
comes first, then self-contained `moof`+`mdat` fragments every `fragment_s`), and the muxer flushes
each fragment to the file as it completes (`flush_packets`). A process killed with SIGKILL therefore
leaves a file that decodes up to its last fragment (plus the encoder's lookahead, ~0.5 s).

On a clean close the fragments are remuxed (stream copy, no re-encode) into a normal MP4 at `path`.
A `.partial` left by a killed run is found by the next run with the same path, trimmed to its last
complete fragment and kept beside it as `<stem>.recovered[-N]<suffix>`. An advisory lock (flock,
released by the kernel however the process dies) tells a stale `.partial` from one a live process is
still writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from agent.errors import TransportError

__all__ = ["PartialFile", "fragmented_options", "remux_to_mp4", "trim_to_complete_boxes"]

log = logging.getLogger("plugins.sink_file")

_MAX_RECOVERED = 1000


def fragmented_options(fragment_s: float) -> dict[str, str]:
    """Muxer options for a fragmented MP4 that is decodable at every fragment boundary."""
    return {
        "movflags": "empty_moov+default_base_moof",
        "frag_duration": str(max(1, round(fragment_s * 1_000_000))),
        "flush_packets": "1",  # without it the header and fragments sit in libavformat's I/O buffer
    }


def _boxes(f: BinaryIO, size: int) -> Iterator[tuple[int, bytes, int]]:
    """(offset, type, size) of the complete top-level boxes of an ISO-BMFF file, in order."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if box_size == 1 and len(head) == 16:
            box_size = int.from_bytes(head[8:16], "big")
        if box_size < 8 or pos + box_size > size:
            return
        yield pos, kind, box_size
        pos += box_size


def trim_to_complete_boxes(path: Path) -> int:
    """Cut a fragmented MP4 after its last complete fragment: a trailing partial box, or a `moof`
    without its `mdat`, goes. Returns the bytes kept, 0 when no fragment is complete (header only)."""
    keep = 0
    with path.open("r+b") as f:
        for pos, kind, box_size in _boxes(f, path.stat().st_size):
            if kind == b"mdat":
                keep = pos + box_size
        f.truncate(keep)
    return keep


def remux_to_mp4(src: Path, dst: Path) -> None:
    """Stream-copy every packet of `src` into a normal (non-fragmented) MP4 at `dst`."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), mode="w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


class PartialFile:
    """`<path>.partial` held under an advisory lock; recovers one left by a killed run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.finishing = path.with_name(path.name + ".finishing")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock a fresh, empty `.partial` (a stale one is recovered first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TransportError(f"{self.path} is being written by another running session") from None
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.partial))
            except FileNotFoundError:
                current = False
            if current and os.fstat(fd).st_size == 0:
                self._fd = fd
                self.finishing.unlink(missing_ok=True)  # a remux a killed run did not finish
                return
            try:
                if current:  # not replaced meanwhile by a run that recovered it first
                    self._recover()
            finally:
                os.close(fd)
        raise TransportError(f"cannot take {self.partial}: it keeps being replaced")

    def _recover(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if trim_to_complete_boxes(self.partial) == 0:
                self.partial.unlink()
                return
            target = self._recovered_name()
            os.replace(self.partial, target)
            log.warning("recovered the recording of a killed run: %s", target)

    def _recovered_name(self) -> Path:
        stem, suffix = self.path.stem, self.path.suffix
        for n in range(1, _MAX_RECOVERED):
            name = f"{stem}.recovered{'' if n == 1 else f'-{n}'}{suffix}"
            if not (candidate := self.path.with_name(name)).exists():
                return candidate
        raise TransportError(f"too many recovered recordings beside {self.path}; move them away")

    def publish(self, remux: bool) -> None:
        """Make the finished recording the file at `path` (remuxed to a normal MP4 if `remux`)."""
        if remux:
            import av

            try:
                remux_to_mp4(self.partial, self.finishing)
                os.replace(self.finishing, self.path)
                self.partial.unlink()
                return
            except (OSError, av.error.FFmpegError) as e:
                self.finishing.unlink(missing_ok=True)
                log.warning("could not remux %s (%s); keeping the fragmented MP4", self.partial, e)
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.finishing.unlink(missing_ok=True)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
