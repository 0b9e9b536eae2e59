"""``drivestack failures RUN``: where a drive failed: outcomes and infractions by kind of route (the traffic mixes
of the generated suites), the worst routes and, when the run has traces (``traces=true``), its long stops and who
held the car in them, as Markdown tables, printed and written to RUN/failures.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivestack.planning.evaluation.failures import failure_table, read_results, worst_routes
from drivestack.planning.evaluation.stops import longest_stops, read_stops, stops_table


@dataclass
class FailuresConfig:
    run: str = "runs/drive"  # (str) results folder of `drivestack drive`
    worst: int = 10  # (int) how many of the lowest-scoring routes (and of the longest stops) to list
    stop_s: float = 20.0  # (float) seconds standing still that make a long stop (read from RUN/traces, when the drive wrote them)

    def __post_init__(self) -> None:
        if self.worst < 0:
            raise ValueError(f"worst must be >= 0, got {self.worst}")
        if self.stop_s <= 0:
            raise ValueError(f"stop_s must be > 0, got {self.stop_s}")


CONFIG_CLASS = FailuresConfig
DEFAULT_CONFIG = None
POSITIONAL = ("run",)  # `drivestack failures runs/drive`


def run(config: FailuresConfig) -> int:
    results = read_results(config.run)
    text = f"## Failures of {config.run} ({len(results)} routes)\n\n{failure_table(results)}\n"
    if config.worst:
        text += f"\n### The {min(config.worst, len(results))} lowest driving scores\n\n{worst_routes(results, config.worst)}\n"
    stops = read_stops(config.run, config.stop_s)
    if stops:
        text += f"\n### Stops of {config.stop_s:g} s or more, by what held the car\n\n{stops_table(stops)}\n"
        if config.worst:
            text += f"\n### The {min(config.worst, len(stops))} stops with the most time the expert would have been moving\n\n"
            text += f"{longest_stops(stops, config.worst)}\n"
    print(text)
    (Path(config.run) / "failures.md").write_text(text)
    return 0
