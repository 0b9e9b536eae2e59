"""The simulators behind one interface (:mod:`drivestack.sim.interface`) that speaks CARLA's conventions:
the embedded simulator (:mod:`drivestack.sim.embedded`) and CARLA (:mod:`drivestack.sim.carla`)."""

from __future__ import annotations

from drivestack.sim.interface import Simulator
from drivestack.sim.settings import SimConfig


def make_simulator(config: SimConfig | None = None) -> Simulator:
    """The backend ``config.backend`` names (default config: the embedded simulator)."""
    config = config or SimConfig()
    if config.backend == "embedded":
        from drivestack.sim.embedded.backend import EmbeddedSimulator

        return EmbeddedSimulator(config)
    if config.backend == "carla":
        from drivestack.sim.carla.backend import CarlaSimulator

        return CarlaSimulator(config)
    raise ValueError(f"unknown simulator backend '{config.backend}' (embedded, carla)")
