"""``drivestack collect``: record expert driving episodes into a dataset (resumes an interrupted one)."""

from __future__ import annotations

import sys

from drivestack.planning.agents.expert import ExpertAgent
from drivestack.sim.record.dataset_io import DatasetError
from drivestack.sim.record.recorder import CollectConfig, CollectResult, collect

CONFIG_CLASS = CollectConfig
DEFAULT_CONFIG = "collect.yaml"


def summary(config: CollectConfig, result: CollectResult) -> str:
    total = len(result.completed) + len(result.incomplete)
    text = f"{len(result.completed)}/{total} episodes complete in {config.out}"
    if result.failed:
        text += f"; failed this run: {', '.join(sorted(result.failed))}"
    if result.interrupted:
        text += "; interrupted: run the same command again to resume"
    return text


def finish(config: CollectConfig, result: CollectResult) -> int:
    """Print the summary; the exit code: 0 done, 1 episodes left incomplete, 130 interrupted."""
    print(summary(config, result))
    if result.interrupted:
        return 130
    return 1 if result.incomplete else 0


def run(config: CollectConfig) -> int:
    """Collect. Exit code: 0 done, 1 episodes left incomplete, 2 the dataset cannot be resumed, 130 interrupted."""
    try:
        result = collect(config, ExpertAgent)
    except DatasetError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    return finish(config, result)
