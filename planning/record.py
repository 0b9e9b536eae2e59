"""Datasets recorded with the project's agents: the expert's episodes (``collect``) and DAgger's, where the
learned agent drives and the expert labels (``dagger``). Each returns its exit status and prints a summary."""

from __future__ import annotations

from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.dagger import DaggerConfig, dagger
from drivestack.sim.record.recorder import CollectConfig, collect, finish


def collect_expert(config: CollectConfig) -> int:
    """Record (or resume) the expert's episodes of ``config``: 0 done, 1 episodes left incomplete, 130 interrupted."""
    return finish(config, collect(config, ExpertAgent))


def collect_dagger(config: DaggerConfig) -> int:
    """Record (or resume) the DAgger episodes of ``config``; exit status as :func:`collect_expert`."""
    return finish(config, dagger(config))
