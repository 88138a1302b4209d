"""SmartTurnModel: Smart Turn v3.2 (BSD-2, pipecat-ai) on onnxruntime, one thread, no pipecat at run time.

`model(audio, sample_rate)` -> probability (0..1) that the user finished the turn, judged from the
last 8 s of the utterance (including the short pause after it). Blocking (~10-60 ms on a free
core): callers run it in a thread. The ONNX graph ends in a sigmoid (its output is named `logits`
but holds probabilities).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError
from flowact.types import Int16Array
from plugins.turn_smart.features import SAMPLE_RATE, last_window, log_mel
from plugins.turn_smart.fetch import MODEL_FILE, default_model_path

__all__ = ["SmartTurnModel"]

MAKE_TARGET = "make smart-turn-model"


class SmartTurnModel:
    """Callable end-of-turn model (satisfies `agent.endpointing.TurnCompletion`)."""

    window_s = 8.0

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 1) -> None:
        path = Path(model_path).expanduser() if model_path else default_model_path()
        if not path.is_file():
            raise ConfigError(
                f"vad.end_of_turn: Smart Turn model {path} not found; run `{MAKE_TARGET}` (part of `make setup`) "
                f"to extract {MODEL_FILE} from the pipecat-ai wheel, or set vad.end_of_turn.model_path"
            )
        try:
            import onnxruntime
        except ImportError as e:
            raise ConfigError("vad.end_of_turn: smart_turn needs onnxruntime (extra `whisper` or `piper`)") from e
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 4
        self.path = path
        self._session: Any = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def features(self, audio: Int16Array, sample_rate: int) -> np.ndarray:
        """(1, 80, 800) model input for int16 audio at 16 kHz."""
        if sample_rate != SAMPLE_RATE:
            raise ConfigError(f"vad.end_of_turn: smart_turn needs 16 kHz input, got {sample_rate} Hz")
        x = np.asarray(audio[-(8 * SAMPLE_RATE) :], np.float32) / 32768.0
        return log_mel(last_window(x))[None]

    def __call__(self, audio: Int16Array, sample_rate: int) -> float:
        out = self._session.run(None, {"input_features": self.features(audio, sample_rate)})
        return float(np.asarray(out[0]).reshape(-1)[0])

    def warmup(self) -> None:
        """One inference on silence so the first real call is not the slow one."""
        self(np.zeros(SAMPLE_RATE, np.int16), SAMPLE_RATE)
