"""The agent contract, the same on every simulator backend (as the CARLA leaderboard's AutonomousAgent):
``setup`` once, ``run_step`` every frame, ``destroy`` at the end; ``__call__`` times each step."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from drivestack.sim.interface import Observation, VehicleControl
from drivestack.sim.settings import SimConfig


@dataclass
class AgentDebug:
    """What an agent wants drawn on the drive video (all optional)."""

    waypoints: np.ndarray | None = None  # (K, 2) planned waypoints, ego frame
    target_speed: float | None = None
    brake_probability: float | None = None  # learned agents: the policy's brake output, 0..1
    creeping: bool = False  # learned agents: driving off by the creep rule (planning.creep), not by the policy
    timings_ms: dict[str, float] = field(default_factory=dict)


class Agent(ABC):
    """A driving agent. Learned agents read only cameras, speed, command and route; the expert may read all."""

    def __init__(self) -> None:
        self.debug = AgentDebug()
        self.step_ms: list[float] = []

    def setup(self, sim_config: SimConfig) -> None:
        """Called once per route, before the first step."""

    @abstractmethod
    def run_step(self, obs: Observation) -> VehicleControl:
        """Controls for this frame."""

    def destroy(self) -> None:
        """Release what the agent holds."""

    def perceived(self) -> np.ndarray | None:
        """What the agent's network saw in the last step, drawn on its frame (HxWx3 RGB); None without a network."""
        return None

    def __call__(self, obs: Observation) -> VehicleControl:
        start = time.perf_counter()
        control = self.run_step(obs)
        self.step_ms.append(1000.0 * (time.perf_counter() - start))
        return control


class ExpertAgent(Agent):
    """The privileged expert behind the agent contract (the reference every learned agent is compared to)."""

    needs_cameras = False

    def setup(self, sim_config: SimConfig) -> None:
        from drivestack.planning.agents.expert import ExpertDriver

        self.expert = ExpertDriver(sim_config)

    def run_step(self, obs: Observation) -> VehicleControl:
        control = self.expert.run_step(obs)
        self.debug = AgentDebug(target_speed=self.expert.target_speed)
        return control
