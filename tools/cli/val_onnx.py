"""Evaluate exported perception graphs (fp32, fp16, int8) on a split with the same metrics as `val`, to see
what each precision costs in mIoU and mAP."""

from __future__ import annotations

from drivestack.planning.deploy.val_onnx import ValOnnxConfig, val_onnx

CONFIG_CLASS = ValOnnxConfig
DEFAULT_CONFIG = "val_onnx.yaml"


def run(config: ValOnnxConfig) -> int:
    return val_onnx(config)
