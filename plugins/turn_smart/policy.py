"""Build a VAD plugin's `Endpointer` from its config, with the end-of-turn policy it selects."""

from __future__ import annotations

from typing import Protocol

from agent.endpointing import CompletionPolicy, Endpointer, EndpointingConfig
from plugins.turn_smart.config import EndOfTurnConfig

__all__ = ["VadEndpointingConfig", "build_endpointer"]


class VadEndpointingConfig(EndpointingConfig, Protocol):
    end_of_turn: EndOfTurnConfig


def build_endpointer(
    config: VadEndpointingConfig, *, sample_rate: int, frame_samples: int, voiced_lag_s: float = 0.0
) -> Endpointer:
    """The shared endpointer; with `end_of_turn: smart_turn` it loads the model now (a missing file is
    a ConfigError naming the make target)."""
    eot = config.end_of_turn
    policy = None
    if eot.mode == "smart_turn":
        from plugins.turn_smart.model import SmartTurnModel

        policy = CompletionPolicy(
            SmartTurnModel(eot.model_path, threads=eot.threads), pause_ms=eot.pause_ms,
            max_silence_ms=eot.max_silence_ms, threshold=eot.threshold, verdict_wait_ms=eot.verdict_wait_ms,
            text_silence_ms=eot.text_complete_ms,
        )
    return Endpointer.from_config(
        config, sample_rate=sample_rate, frame_samples=frame_samples, policy=policy, voiced_lag_s=voiced_lag_s,
        early_ms=eot.early_asr_ms,
    )

