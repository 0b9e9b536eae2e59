"""Closed-loop latency per stage (preprocess, perception, policy, post-processing, control) for PyTorch eager
and ONNX Runtime variants, on recorded frames; table, JSON and a latency histogram."""

from __future__ import annotations

from drivestack.planning.deploy.bench import BenchConfig, bench

CONFIG_CLASS = BenchConfig
DEFAULT_CONFIG = "bench.yaml"


def run(config: BenchConfig) -> int:
    return bench(config)
