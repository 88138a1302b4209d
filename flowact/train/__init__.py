"""Training: data extraction from talking videos, training loop, distillation."""

from flowact.train.dataset import Clip, MotionWindows, load_clips, motion_stats, save_shard
from flowact.train.distill import DistillConfig, DistillResult, distill
from flowact.train.extract import extract, extract_video
from flowact.train.loop import TrainConfig, TrainResult, train

__all__ = [
    "Clip",
    "DistillConfig",
    "DistillResult",
    "MotionWindows",
    "TrainConfig",
    "TrainResult",
    "distill",
    "extract",
    "extract_video",
    "load_clips",
    "motion_stats",
    "save_shard",
    "train",
]
