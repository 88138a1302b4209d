"""MMDiT model code (motion-space and video-latent presets)."""
