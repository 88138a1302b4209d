"""A scripted LLM for orchestration tests and demos without a model. Not a language model."""

from plugins.llm_scripted.llm import ScriptedLLM, ScriptedLLMConfig

__all__ = ["ScriptedLLM", "ScriptedLLMConfig"]
