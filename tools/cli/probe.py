"""Probe a driving policy on recorded frames where the car stands at a light: how often it brakes when the
expert would go (green) and when the expert waits (red), and how often the creep gates (planning/agents/creep.py:
no red or yellow light seen, nothing in the corridor ahead) would let it drive off. Run it on a DAgger round
the policy did not train on to tell learning the light from memorising the stops (docs/policy.md)."""

from __future__ import annotations

from drivestack.planning.evaluation.probe import ProbeConfig, probe

CONFIG_CLASS = ProbeConfig
DEFAULT_CONFIG = "probe.yaml"


def run(config: ProbeConfig) -> int:
    return probe(config)
