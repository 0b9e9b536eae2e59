"""``drivestack collect``: record expert driving episodes into a dataset (resumes an interrupted one)."""

from __future__ import annotations

from drivestack.planning.record import collect_expert
from drivestack.sim.record.recorder import CollectConfig

CONFIG_CLASS = CollectConfig
DEFAULT_CONFIG = "collect.yaml"


def run(config: CollectConfig) -> int:
    """Exit code: 0 done, 1 episodes left incomplete, 2 the dataset cannot be resumed, 130 interrupted."""
    return collect_expert(config)
