"""The local llama.cpp server never outlives the agent: kill -9 of the agent (while the model loads,
or once it serves) takes the server down within seconds; a normal stop leaves nothing of its group."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugins.llm_openai.config import LocalServerConfig
from plugins.llm_openai.local_server import LocalLlamaServer

ROOT = Path(__file__).resolve().parents[2]

# An agent-like parent: starts the real server as the llm plugin does, reports, then lives on.
PARENT = """
import asyncio
from plugins.llm_openai.config import LocalServerConfig
from plugins.llm_openai.local_server import LocalLlamaServer

async def main():
    server = LocalLlamaServer(LocalServerConfig(n_ctx=512, n_threads=1, startup_timeout_s=240))
    start = asyncio.create_task(server.start(), name="server-start")
    while server.proc is None and not start.done():
        await asyncio.sleep(0.02)
    print("spawned", server.proc.pid, flush=True)
    await start
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is not: it holds no memory and no port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> float:
    t0 = time.monotonic()
    while alive(pid):
        if time.monotonic() - t0 > timeout:
            os.kill(pid, signal.SIGKILL)  # do not leave it behind for the next test
            pytest.fail(f"llama.cpp server {pid} still running {timeout} s after its parent was killed")
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("when", ["loading", "serving"])
def test_server_dies_when_the_agent_is_killed(when: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().split()
        assert line and line[0] == "spawned", line
        pid = int(line[1])
        if when == "serving":
            assert parent.stdout.readline().strip() == "ready"
        assert alive(pid)
        assert "llama_cpp.server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone_after = wait_gone(pid, 5.0)
        print(f"{when}: server gone {gone_after:.2f} s after kill -9 of its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.timeout(300)
async def test_stop_ends_the_whole_process_group() -> None:
    server = LocalLlamaServer(LocalServerConfig(n_ctx=512, n_threads=1, startup_timeout_s=240))
    await server.start()
    assert server.proc is not None
    pid = server.proc.pid
    try:
        assert os.getpgid(pid) == pid != os.getpgid(0)  # a group of its own
    finally:
        await server.stop()
    assert not alive(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no member of its group is left


@pytest.mark.timeout(300)
async def test_a_killed_server_restarts_on_the_same_port() -> None:
    import httpx

    server = LocalLlamaServer(LocalServerConfig(n_ctx=512, n_threads=1, startup_timeout_s=240))
    await server.start()
    try:
        assert server.proc is not None
        port, old = server.port, server.proc.pid
        server.proc.send_signal(signal.SIGKILL)
        await server.restart()
        assert server.port == port and server.proc is not None and server.proc.pid != old
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.base_url}/models")).status_code == 200
    finally:
        await server.stop()


@pytest.mark.timeout(400)
async def test_the_llm_restarts_its_local_server_after_a_kill() -> None:
    """kill -9 of the local server (a crash, the OOM killer): the next chat starts it again on its
    port and answers; the retry of the chat that met the dead server is answered too."""
    from agent.frames import TextDelta
    from agent.interfaces import ChatMessage
    from plugins.llm_openai import OpenAILLM, OpenAILLMConfig

    llm = OpenAILLM(OpenAILLMConfig(
        local_server=LocalServerConfig(n_ctx=512, n_threads=1, startup_timeout_s=240), max_tokens=8,
        first_token_timeout_s=240, backoff_s=0.2,
    ))
    await llm.start()
    assert llm.server is not None and llm.server.proc is not None
    messages = [ChatMessage("system", "Answer in one word."), ChatMessage("user", "Say yes.")]

    async def answer() -> str:
        return "".join([d.text async for d in llm.chat(messages) if isinstance(d, TextDelta)])

    try:
        assert await answer()
        port, old = llm.server.port, llm.server.proc.pid
        os.killpg(old, signal.SIGKILL)
        await asyncio.wait_for(llm.server.proc.wait(), 10)
        assert await answer()  # the first attempt meets the dead server; its retry the restarted one
        assert llm.server_restarts == 1
        assert llm.server.proc is not None and llm.server.proc.pid != old and llm.server.port == port
        assert await answer() and llm.server_restarts == 1  # alive again: no further restart
    finally:
        await llm.aclose()
    assert llm.server.proc is None


@pytest.mark.timeout(500)
async def test_the_router_step_has_its_own_server_which_restarts_after_a_kill() -> None:
    """With tools in router mode the router step asks its own llama.cpp server (llama.cpp keeps one
    prompt's cache: on one server the router's prompt and the answer's evicted each other every turn).
    Its tool call still answers with the order's facts (said as written: `cache_behind`, the session
    then primes the answer's server with the conversation); a killed router server is started again on
    its port by the next chat; without tools there is no second server; closing stops both."""
    from agent.frames import TextDelta
    from agent.interfaces import ChatMessage
    from agent.tools import ToolConfig
    from plugins.llm_openai import OpenAILLM, OpenAILLMConfig

    server_cfg = LocalServerConfig(n_ctx=1024, n_threads=1, startup_timeout_s=240)
    assert OpenAILLM(OpenAILLMConfig(local_server=server_cfg)).router_server is None  # no tools
    tool = ToolConfig(name="lookup_order", callable="examples.customer_support.shop:lookup_order", speak="result",
                      say="{summary}", timeout_s=5)
    llm = OpenAILLM(OpenAILLMConfig(local_server=server_cfg, tools=[tool], max_tokens=40, temperature=0.0,
                                    first_token_timeout_s=240, backoff_s=0.2))
    await llm.start()
    main, router = llm.server, llm.router_server
    assert main is not None and router is not None and main.proc is not None and router.proc is not None
    assert main.port != router.port and str(llm._make_router_client().base_url).startswith(router.base_url)
    system = ChatMessage("system", "You are a shop's support agent. Reply in one short sentence.")

    async def answer(question: str) -> str:
        msgs = [system, ChatMessage("user", question)]
        return "".join([d.text async for d in llm.chat(msgs) if isinstance(d, TextDelta)])

    try:
        await llm.warmup([system])
        assert "shipped" in (await answer("Where is my order 1234?")).lower()
        assert [c.name for c in llm.last_tool_calls] == ["lookup_order"]
        assert llm.cache_behind  # the tool's line, said as written: the answer's server never saw it
        port, old = router.port, router.proc.pid
        os.killpg(old, signal.SIGKILL)
        await asyncio.wait_for(router.proc.wait(), 10)
        assert "5678" in await answer("And order 5678?")  # the router server is started again first
        assert llm.server_restarts == 1 and router.proc is not None and router.proc.pid != old and router.port == port
        assert main.proc is not None and main.proc.returncode is None
        assert await answer("Thanks, that is all.")  # no tool: the answer's server
        assert llm.last_tool_calls == [] and not llm.cache_behind
    finally:
        await llm.aclose()
    assert main.proc is None and router.proc is None
