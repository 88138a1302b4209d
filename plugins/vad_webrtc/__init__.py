"""WebRTC VAD (the `webrtcvad-wheels` package): the lightest model-based VAD, with shared endpointing."""

from plugins.vad_webrtc.config import WebrtcVADConfig
from plugins.vad_webrtc.vad import WebrtcVAD

__all__ = ["WebrtcVAD", "WebrtcVADConfig"]
