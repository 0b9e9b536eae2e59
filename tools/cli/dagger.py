"""``drivestack dagger``: the learned agent drives, the expert labels every state it visits (DAgger data)."""

from __future__ import annotations

from drivestack.planning.dagger import DaggerConfig
from drivestack.planning.record import collect_dagger

CONFIG_CLASS = DaggerConfig
DEFAULT_CONFIG = "dagger.yaml"


def run(config: DaggerConfig) -> int:
    """Exit code: as ``collect``; 2 also for a model that is missing or does not fit the camera."""
    return collect_dagger(config)
