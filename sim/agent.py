"""The agent contract, the same on every simulator backend and for every agent, the privileged expert and
the learned one (as the CARLA leaderboard's AutonomousAgent): ``setup`` at the start of each route or
episode, ``sensors`` to say which cameras it reads (``reads_truth`` whether it reads more than their RGB images),
``run_step`` every frame, ``destroy`` at the end;
``__call__`` times each step. The route runner, the recorder and DAgger all drive agents through it."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from drivestack.sim.interface import RGB_ONLY, Observation, VehicleControl
from drivestack.sim.settings import SimConfig


@dataclass
class AgentDebug:
    """What an agent wants drawn on the drive video (all optional)."""

    waypoints: np.ndarray | None = None  # (K, 2) planned waypoints, ego frame
    target_speed: float | None = None
    brake_probability: float | None = None  # learned agents: the policy's brake output, 0..1
    creeping: bool = False  # learned agents: driving off by the creep rule (drivestack.planning.agents.creep), not by the policy
    emergency_brake: bool = False  # learned agents: braking by the time-to-collision layer (drivestack.planning.agents.safety)
    red_light_stop: bool = False  # learned agents: target speed capped by the red-light layer (drivestack.planning.agents.red_light)
    timings_ms: dict[str, float] = field(default_factory=dict)


class Agent(ABC):
    """A driving agent. Learned agents read only cameras, speed, command and route; the expert may read all."""

    def __init__(self) -> None:
        self.debug = AgentDebug()
        self.step_ms: list[float] = []

    def setup(self, sim_config: SimConfig) -> None:
        """Called at the start of every route or episode, before its first step: (re)sets all state."""

    def sensors(self) -> list[str]:
        """The cameras the agent reads; empty for an agent that reads only ground truth, whose frames need
        not be rendered."""
        return []

    def reads_truth(self) -> bool:
        """Whether the agent reads its cameras' truth (semantic, depth and instance images, 2D boxes) as well as
        their RGB images; the steps of an agent that does not render RGB alone (:func:`render_mode`)."""
        return True

    @abstractmethod
    def run_step(self, obs: Observation) -> VehicleControl:
        """Controls for this frame."""

    def destroy(self) -> None:
        """Release what the agent holds."""

    def stats(self) -> dict[str, float | int | None]:
        """Counts of the route just driven that its record keeps (``RouteResult.agent_stats``); none by default."""
        return {}

    def perceived(self) -> np.ndarray | None:
        """What the agent's network saw in the last step, drawn on its frame (HxWx3 RGB); None without a network."""
        return None

    def __call__(self, obs: Observation) -> VehicleControl:
        start = time.perf_counter()
        control = self.run_step(obs)
        self.step_ms.append(1000.0 * (time.perf_counter() - start))
        return control


def render_mode(agent: Agent) -> bool | str:
    """What each step renders for ``agent`` (``Simulator.step``'s ``render``): nothing for an agent without
    cameras, RGB alone for one that reads no truth, all the images otherwise."""
    if not agent.sensors():
        return False
    return True if agent.reads_truth() else RGB_ONLY
