"""``drivestack dagger``: the learned agent drives, the expert labels every state it visits (DAgger data)."""

from __future__ import annotations

import sys

from drivestack.cli.collect import finish
from drivestack.planning.agents.learned import ModelMismatchError
from drivestack.planning.dagger import DaggerConfig, dagger
from drivestack.sim.record.dataset_io import DatasetError

CONFIG_CLASS = DaggerConfig
DEFAULT_CONFIG = "dagger.yaml"


def run(config: DaggerConfig) -> int:
    """Record. Exit code: as ``collect``; 2 also for a model that is missing or does not fit the camera."""
    try:
        result = dagger(config)
    except (DatasetError, ModelMismatchError, FileNotFoundError) as e:
        print(f"dagger: {e}", file=sys.stderr)
        return 2
    return finish(config, result)
