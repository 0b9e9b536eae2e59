"""``drivestack compare A B``: two drive result folders route by route: the routes that flipped and why, and
the mean difference in driving score with its paired bootstrap 95 % CI."""

from __future__ import annotations

from dataclasses import dataclass

from drivestack.common.io import write_json_atomic
from drivestack.planning.evaluation.stats import compare


@dataclass
class CompareConfig:
    a: str = ""  # (str) results folder of `drivestack drive` (the baseline)
    b: str = ""  # (str) results folder of the same suite driven by the candidate
    out: str = ""  # (str) also write the comparison as JSON here; empty = no


CONFIG_CLASS = CompareConfig
DEFAULT_CONFIG = None
POSITIONAL = ("a", "b")  # `drivestack compare runs/drive_a runs/drive_b`


def run(config: CompareConfig) -> int:
    comparison = compare(config.a, config.b)
    print(comparison.table())
    if config.out:
        write_json_atomic(config.out, comparison.to_dict())
    return 0
