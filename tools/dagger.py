"""``drivestack dagger``: the learned agent drives, the expert labels every state it visits (DAgger data)."""

from __future__ import annotations

import sys

from planning.dagger import DaggerConfig, dagger
from planning.policy_agent import ModelMismatchError
from sim.dataset_io import DatasetError
from tools.collect import finish

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
