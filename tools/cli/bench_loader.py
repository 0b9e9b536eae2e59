"""Training-loader throughput (decode or RAM cache + augment + collate), in images per second.

Besides the wall-clock rate it prints the CPU time per image summed over the main process and the workers:
on a shared machine the rate depends on the other jobs, the CPU time much less (2 idle cores would give
about 2000 / (CPU ms per image) images per second).
"""

from __future__ import annotations

from drivestack.perception.data.bench_loader import PerceptionConfig, bench_loader

CONFIG_CLASS = PerceptionConfig
DEFAULT_CONFIG = "perception.yaml"


def run(config: PerceptionConfig) -> int:
    return bench_loader(config)
