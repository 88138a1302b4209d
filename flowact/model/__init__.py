"""MMDiT model code (motion-space and video-latent presets)."""

from flowact.model.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from flowact.model.config import PRESETS, MMDiTConfig, preset
from flowact.model.kv_cache import ChunkKV, KVCache
from flowact.model.mmdit import MMDiT
from flowact.model.stream import ChunkStreamer, generate_full

__all__ = [
    "PRESETS",
    "ChunkKV",
    "ChunkStreamer",
    "KVCache",
    "MMDiT",
    "MMDiTConfig",
    "checkpoint_paths",
    "generate_full",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
]
