"""Render exactly what enters the network (after augmentation) with its labels to a PNG grid."""

from __future__ import annotations

from drivestack.perception.look import PerceptionConfig, look

CONFIG_CLASS = PerceptionConfig
DEFAULT_CONFIG = "perception.yaml"


def run(config: PerceptionConfig) -> int:
    return look(config)
