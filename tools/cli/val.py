"""Evaluate a perception checkpoint: mIoU, mAP@0.5 and @0.5:0.95 per class, latency; JSON, table, renders."""

from __future__ import annotations

from drivestack.perception.val import PerceptionConfig, val_perception

CONFIG_CLASS = PerceptionConfig
DEFAULT_CONFIG = "perception.yaml"


def run(config: PerceptionConfig) -> int:
    return val_perception(config)
