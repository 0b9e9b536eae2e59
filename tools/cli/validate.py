"""``drivestack validate``: check a dataset and name every missing, truncated or unreadable file."""

from __future__ import annotations

from dataclasses import dataclass

from drivestack.sim.record.dataset_io import validate_dataset


@dataclass
class ValidateConfig:
    root: str = "data/dataset"  # (str) dataset folder to check


CONFIG_CLASS = ValidateConfig
DEFAULT_CONFIG = None


def run(config: ValidateConfig) -> int:
    """Print every problem; exit code 1 if there is any."""
    problems = validate_dataset(config.root)
    for problem in problems:
        print(problem)
    print(f"{config.root}: {len(problems)} problem(s)" if problems else f"{config.root}: dataset is valid")
    return 1 if problems else 0
