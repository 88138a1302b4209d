"""End of turn for the VAD plugins (a shared plugin module: vad_energy, vad_silero and vad_webrtc import it).

`vad.end_of_turn` selects plain silence (default) or Smart Turn v3.2, an open (BSD-2) audio model
that tells a finished turn from a mid-sentence pause. The ONNX file is extracted from the
`pipecat-ai==1.14.0` wheel at setup (`make smart-turn-model`); pipecat is not needed at run time.
The model module (onnxruntime) is imported only when smart_turn is selected.
"""

from plugins.turn_smart.config import EndOfTurnConfig
from plugins.turn_smart.policy import build_endpointer

__all__ = ["EndOfTurnConfig", "build_endpointer"]
