"""Export the driving model to ONNX: fused (frame, speed, command, target point -> everything), perception, policy;
fp32 checked for parity on recorded frames, plus fp16 and INT8 (static QDQ, calibrated on recorded frames)."""

from __future__ import annotations

from drivestack.planning.deploy.export import ExportConfig, export

CONFIG_CLASS = ExportConfig
DEFAULT_CONFIG = "export.yaml"


def run(config: ExportConfig) -> int:
    return export(config)
