"""Package a trained driving model for shipping: weights only (fp16 storage), the fused ONNX graphs, and the
metrics measured on it, into one small folder (``models/`` in the repository)."""

from __future__ import annotations

from drivestack.planning.deploy.package import PackageConfig, package

CONFIG_CLASS = PackageConfig
DEFAULT_CONFIG = "package.yaml"


def run(config: PackageConfig) -> int:
    return package(config)
