"""Shared fixtures: a small embedded town that builds in about a second."""

from __future__ import annotations

import pytest
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig


def small_sim_config(**traffic) -> SimConfig:
    """Embedded simulator on a 3x3 town with a little traffic and one 160x80 camera."""
    return SimConfig(
        cameras=[CameraConfig(width=160, height=80)],
        town=TownConfig(grid=3),
        traffic=TrafficConfig(**{"vehicles": 6, "pedestrians": 6, **traffic}),
        route_length=150.0,
    )


@pytest.fixture(scope="session")
def sim_config() -> SimConfig:
    return small_sim_config()


@pytest.fixture(scope="session")
def embedded(sim_config):
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    sim = EmbeddedSimulator(sim_config)
    yield sim
    sim.close()
