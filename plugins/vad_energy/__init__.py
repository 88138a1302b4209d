"""Energy-threshold VAD with endpointing: no model, no dependency (silero/webrtc are better)."""

from plugins.vad_energy.vad import EnergyVAD, EnergyVADConfig

__all__ = ["EnergyVAD", "EnergyVADConfig"]
