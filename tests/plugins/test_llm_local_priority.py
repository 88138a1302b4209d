"""The local llama.cpp server runs below the media path's CPU priority, with the configured threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plugins.llm_openai.config import LocalServerConfig
from plugins.llm_openai.local_server import LocalLlamaServer

pytestmark = pytest.mark.llm


def _proc_view(pid: int) -> tuple[set[int], int, list[bytes]]:
    """(nice values of every thread, thread count, command line) of a process, from /proc."""
    # /proc/<pid>/task/<tid>/stat: field 19 is the nice value (fields after the ")" of the command name)
    tasks = list(Path(f"/proc/{pid}/task").glob("*/stat"))
    nices = {int(t.read_text().rsplit(")", 1)[1].split()[16]) for t in tasks}
    return nices, len(tasks), Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


async def test_started_server_has_the_configured_niceness_in_every_thread() -> None:
    server = LocalLlamaServer(LocalServerConfig(model="smollm2-135m", n_threads=1, nice=7, n_ctx=512))
    await server.start()
    try:
        assert server.proc is not None
        base = os.getpriority(os.PRIO_PROCESS, 0)
        nices, n_threads, cmdline = _proc_view(server.proc.pid)
        assert n_threads > 1  # llama.cpp / uvicorn threads were started after the priority was set
        assert nices == {min(19, base + 7)}
        assert cmdline[cmdline.index(b"--n_threads") + 1] == b"1"
        assert cmdline[cmdline.index(b"--n_threads_batch") + 1] == b"1"  # the prompt too (null: n_threads)
    finally:
        await server.stop()


def test_default_priority_is_below_the_media_path() -> None:
    assert LocalServerConfig().nice > 0
