"""OpenAI-compatible streaming LLM; offline default: a local llama.cpp server with a shipped model."""

from plugins.llm_openai.config import LocalServerConfig, OpenAILLMConfig
from plugins.llm_openai.llm import OpenAILLM
from plugins.llm_openai.local_server import LocalLlamaServer, shipped_model_path

__all__ = ["LocalLlamaServer", "LocalServerConfig", "OpenAILLM", "OpenAILLMConfig", "shipped_model_path"]
