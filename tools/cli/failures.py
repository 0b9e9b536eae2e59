"""``drivestack failures RUN``: where a drive failed: outcomes and infractions by kind of route (the traffic mixes
of the generated suites) and the worst routes, as Markdown tables, printed and written to RUN/failures.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivestack.planning.evaluation.failures import failure_table, read_results, worst_routes


@dataclass
class FailuresConfig:
    run: str = "runs/drive"  # (str) results folder of `drivestack drive`
    worst: int = 10  # (int) how many of the lowest-scoring routes to list

    def __post_init__(self) -> None:
        if self.worst < 0:
            raise ValueError(f"worst must be >= 0, got {self.worst}")


CONFIG_CLASS = FailuresConfig
DEFAULT_CONFIG = None
POSITIONAL = ("run",)  # `drivestack failures runs/drive`


def run(config: FailuresConfig) -> int:
    results = read_results(config.run)
    text = f"## Failures of {config.run} ({len(results)} routes)\n\n{failure_table(results)}\n"
    if config.worst:
        text += f"\n### The {min(config.worst, len(results))} lowest driving scores\n\n{worst_routes(results, config.worst)}\n"
    print(text)
    (Path(config.run) / "failures.md").write_text(text)
    return 0
