"""WebRTC VAD (the `webrtcvad-wheels` package): the lightest model-based VAD, with shared endpointing."""

from plugins.vad_webrtc.vad import WebrtcVAD, WebrtcVADConfig

__all__ = ["WebrtcVAD", "WebrtcVADConfig"]
