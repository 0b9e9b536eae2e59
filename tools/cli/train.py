"""Train the multi-task perception network (resumes from <train.out>/last.pt; torchrun for DDP)."""

from __future__ import annotations

from drivestack.perception.train import PerceptionConfig, train_perception

CONFIG_CLASS = PerceptionConfig
DEFAULT_CONFIG = "perception.yaml"


def run(config: PerceptionConfig) -> int:
    return train_perception(config)
