"""Tools that do things: Python callables and HTTP endpoints the LLM may call, run with a timeout.

A tool is declared in config (`ToolConfig`) as one of
* `callable: "package.module:function"` (sync or async; its typed signature becomes the JSON schema,
  its docstring the description);
* `http: {method, url, headers_env, timeout_s}` (arguments go in the query for GET, as JSON otherwise;
  header values come from environment variables, never from the file);
* `builtin: handoff` (hand the conversation to a human);
* `responses:`/`default:` canned answers (demo data only).

`ToolRegistry.run(call)` never raises: errors and timeouts become a failed `ToolResult` whose `spoken`
is a short apology, and are logged. The LLM stream reports progress with `ToolStatus` items (a
`ToolCall` subclass, so consumers that only know `ToolCall` ignore them): phase `started` (show the
avatar is working: `filler` line / thinking face) and `finished` (result, duration, error).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError
from agent.frames import ToolCall
from agent.interfaces import ToolSpec
from flowact.control.commands import loads_json

__all__ = [
    "HANDOFF",
    "HttpToolConfig",
    "Tool",
    "ToolConfig",
    "ToolRegistry",
    "ToolResult",
    "ToolStatus",
    "schema_from_callable",
]

log = logging.getLogger("agent.tools")
HANDOFF = "handoff"
MAX_RESULT_CHARS = 2000  # a tool result enters the prompt: bounded
DEFAULT_APOLOGY = "[concerned] Sorry, I could not check that just now. Please try again in a moment."


class HttpToolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    method: str = Field("GET", pattern="^(GET|POST|PUT|PATCH|DELETE)$")
    headers_env: dict[str, str] = Field(default_factory=dict, description="header name -> env var holding its value")
    headers: dict[str, str] = Field(default_factory=dict, description="non-secret fixed headers")


class ToolConfig(BaseModel):
    """One tool the LLM may call (see the module docstring for the kinds)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] | None = Field(None, description="JSON schema; derived from a callable if omitted")
    callable: str | None = Field(None, description="'package.module:function' (sync or async)")
    http: HttpToolConfig | None = None
    builtin: Literal["handoff"] | None = None
    responses: dict[str, str] = Field(default_factory=dict, description="demo data: argument value -> answer")
    default: str = "No information found."
    timeout_s: float = Field(8.0, gt=0, le=120)
    speak: Literal["llm", "result"] = Field(
        "llm", description="llm: the model words the answer from the result; result: speak `say` (or the result)"
    )
    say: str | None = Field(None, description="template for speak=result, e.g. 'Order {order_id}: {status}.'")
    filler: str | None = Field(None, description="line spoken while the tool runs (None: the LLM config's default)")
    apology: str = DEFAULT_APOLOGY


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    content: str  # what goes into the prompt / is spoken (speak=result)
    duration_s: float
    error: str = ""
    data: Any = None  # parsed JSON result (for `say` templates)


@dataclass(frozen=True, slots=True)
class ToolStatus(ToolCall):
    """Progress of a tool the LLM stream is running. `phase`: started | finished."""

    phase: str = "started"
    filler: str = ""
    ok: bool = True
    result: str = ""
    duration_s: float = 0.0
    error: str = ""
    handoff: bool = False


# --- JSON schema from a typed signature -----------------------------------------------------------
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of(tp: Any) -> dict[str, Any]:
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, Sequence, tuple) and args:
        return {"type": "array", "items": _schema_of(args[0])}
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _schema_of(rest[0])
        return {"anyOf": [_schema_of(a) for a in rest]}
    if origin is dict or tp is dict:
        return {"type": "object"}
    raise ConfigError(f"tools: parameter type {tp!r} has no JSON schema (use str, int, float, bool, list, Literal)")


def schema_from_callable(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON schema of a function's keyword parameters (every parameter must be annotated)."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as e:
        raise ConfigError(f"tools: cannot read the type hints of {fn!r}: {e}") from e
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name not in hints:
            raise ConfigError(f"tools: parameter {name!r} of {fn.__qualname__} needs a type annotation")
        props[name] = _schema_of(hints[name])
        if p.default is p.empty:
            required.append(name)
    return {"type": "object", "properties": props, "required": required}


def _load_callable(ref: str, tool: str) -> Callable[..., Any]:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"tools.{tool}.callable: {ref!r} must be 'package.module:function'")
    if os.getcwd() not in sys.path:  # tool modules of a project are importable from its working directory
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # a tool module that does not import is a config error, named
        raise ConfigError(
            f"tools.{tool}.callable: module {module_name!r} does not import: {type(e).__name__}: {e}"
        ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"tools.{tool}.callable: {module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


# --- tools --------------------------------------------------------------------------------------
class Tool:
    """One configured tool: its spec for the LLM and `invoke(args)` (may raise; the registry guards)."""

    def __init__(self, cfg: ToolConfig) -> None:
        self.cfg = cfg
        kinds = [k for k in (cfg.callable, cfg.http, cfg.builtin) if k is not None]
        if len(kinds) > 1:
            raise ConfigError(f"tools.{cfg.name}: give only one of callable, http, builtin")
        self._fn = _load_callable(cfg.callable, cfg.name) if cfg.callable else None
        params = cfg.parameters
        description = cfg.description
        if self._fn is not None:
            params = params or schema_from_callable(self._fn)
            description = description or inspect.getdoc(self._fn) or cfg.name
        if cfg.builtin == HANDOFF:
            params = params or {"type": "object", "properties": {"reason": {"type": "string"}}, "required": []}
            description = description or "Transfer the customer to a human colleague when they ask for a person."
        if not description:
            raise ConfigError(f"tools.{cfg.name}: give a description")
        self.spec = ToolSpec(cfg.name, description, params or {"type": "object", "properties": {}})

    @property
    def name(self) -> str:
        return self.cfg.name

    async def invoke(self, args: dict[str, Any]) -> Any:
        cfg = self.cfg
        if self._fn is not None:
            if inspect.iscoroutinefunction(self._fn):
                return await self._fn(**args)
            result = await asyncio.to_thread(self._fn, **args)
            return await result if inspect.isawaitable(result) else result
        if cfg.http is not None:
            return await self._http(args)
        if cfg.builtin == HANDOFF:
            return "A human colleague will take over the conversation."
        for value in args.values():
            if str(value) in cfg.responses:
                return cfg.responses[str(value)]
        return cfg.default

    async def _http(self, args: dict[str, Any]) -> Any:
        import httpx

        h = self.cfg.http
        assert h is not None
        headers = dict(h.headers)
        for header, env in h.headers_env.items():
            value = os.environ.get(env)
            if value is None:
                raise ConfigError(f"tools.{self.name}.http.headers_env: environment variable {env} is not set")
            headers[header] = value
        url = h.url.format_map({k: str(v) for k, v in args.items()}) if "{" in h.url else h.url
        async with httpx.AsyncClient(timeout=self.cfg.timeout_s) as client:
            if h.method == "GET":
                r = await client.get(url, params=args, headers=headers)
            else:
                r = await client.request(h.method, url, json=args, headers=headers)
        r.raise_for_status()
        try:
            return r.json()
        except ValueError:
            return r.text


def _validate(args: Any, schema: dict[str, Any]) -> str:
    """A short reason when `args` do not fit the schema's top level (required keys, types), else ''."""
    if not isinstance(args, dict):
        return "arguments are not an object"
    for key in schema.get("required", []):
        if key not in args:
            return f"missing argument {key!r}"
    types_: dict[str, type | tuple[type, ...]] = {
        "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
    }
    for key, value in args.items():
        prop = schema.get("properties", {}).get(key)
        if prop is None:
            continue
        want = types_.get(prop.get("type", ""))
        if want is not None and not isinstance(value, want):
            return f"argument {key!r} should be {prop['type']}"
    return ""


class ToolRegistry:
    """The configured tools; `run(call)` executes one with its timeout and never raises."""

    def __init__(self, tools: Sequence[Tool], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.tools = {t.name: t for t in tools}
        self._now = clock

    @classmethod
    def from_config(cls, configs: Sequence[ToolConfig]) -> ToolRegistry:
        names = [c.name for c in configs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"tools: duplicate tool names {sorted(dup)}")
        return cls([Tool(c) for c in configs])

    @property
    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self.tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    async def run(self, call: ToolCall) -> ToolResult:
        t0 = self._now()
        tool = self.tools.get(call.name)
        if tool is None:
            return self._failed(call, t0, f"unknown tool {call.name!r}", DEFAULT_APOLOGY)
        try:
            args = loads_json(call.arguments or "{}")
        except json.JSONDecodeError as e:
            return self._failed(call, t0, f"arguments are not JSON: {e}", tool.cfg.apology)
        problem = _validate(args, tool.spec.parameters)
        if problem:
            return self._failed(call, t0, problem, tool.cfg.apology)
        known = tool.spec.parameters.get("properties") or {}
        if known:  # small models add stray arguments: drop them rather than fail the call
            args = {k: v for k, v in args.items() if k in known}
        try:
            raw = await asyncio.wait_for(tool.invoke(args), tool.cfg.timeout_s)
        except TimeoutError:
            return self._failed(call, t0, f"timed out after {tool.cfg.timeout_s} s", tool.cfg.apology)
        except Exception as e:  # a tool that raises never kills the turn
            return self._failed(call, t0, f"{type(e).__name__}: {e}", tool.cfg.apology)
        content = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        result = ToolResult(True, content[:MAX_RESULT_CHARS], self._now() - t0, data=raw)
        log.info("tool %s(%s) -> %.80s (%.2f s)", call.name, call.arguments, result.content, result.duration_s)
        return result

    def _failed(self, call: ToolCall, t0: float, error: str, apology: str) -> ToolResult:
        log.warning("tool %s(%s) failed: %s", call.name, call.arguments, error)
        return ToolResult(False, apology, self._now() - t0, error=error)

    def spoken_result(self, call: ToolCall, result: ToolResult) -> str | None:
        """The line to speak for speak=result tools (the `say` template filled from args + result)."""
        tool = self.tools.get(call.name)
        if tool is None or tool.cfg.speak != "result":
            return None
        if tool.cfg.say is None:
            return result.content
        fields: dict[str, Any] = {"result": result.content}
        try:
            fields.update(loads_json(call.arguments or "{}"))
        except (json.JSONDecodeError, TypeError):
            pass
        if isinstance(result.data, dict):
            fields.update(result.data)
        try:
            return tool.cfg.say.format_map(fields)
        except (KeyError, IndexError, ValueError) as e:
            log.warning("tools.%s.say: %s; speaking the raw result", call.name, e)
            return result.content

