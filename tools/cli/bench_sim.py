"""Benchmark the embedded simulator: steps per second, with and without rendering, on one core."""

from __future__ import annotations

from drivestack.planning.deploy.bench_sim import BenchSimConfig, bench_sim

CONFIG_CLASS = BenchSimConfig
DEFAULT_CONFIG = "bench_sim.yaml"


def run(config: BenchSimConfig) -> int:
    return bench_sim(config)
