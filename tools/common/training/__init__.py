"""Task-agnostic training machinery: Trainer, checkpoints, torchrun/DDP helpers."""
