"""Training: data extraction from talking videos, training loop, distillation."""
