"""Parameters, GFLOPs (torch FlopCounterMode) and CPU latency of the perception network at given sizes."""

from __future__ import annotations

from drivestack.perception.models.info import ModelInfoConfig, model_info

CONFIG_CLASS = ModelInfoConfig
DEFAULT_CONFIG = "model_info.yaml"


def run(config: ModelInfoConfig) -> int:
    return model_info(config)
