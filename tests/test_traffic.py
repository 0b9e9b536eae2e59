"""Dense traffic in the embedded simulator keeps flowing: no vehicle stands still longer than it waits at
lights (a light cycle is about 50 s)."""

import numpy as np
import pytest
from drivestack.sim.embedded.backend import EmbeddedSimulator
from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

NOBODY = (np.zeros((0, 3)), np.zeros(0))  # no ego or walkers among the obstacles: only the vehicles' own rules


def longest_standstill(town: int, vehicles: int, seconds: float, grid: int = 5) -> tuple[float, int]:
    """Drive only the NPC vehicles for ``seconds`` and return the longest time any one stood still at the end,
    and how many vehicles moved at all."""
    config = SimConfig(cameras=[CameraConfig("front", 32, 16)], town=TownConfig(grid=grid), traffic=TrafficConfig(vehicles=vehicles))
    with EmbeddedSimulator(config) as sim:
        sim.reset(1, RouteSpec(town=town, length=100.0))
        traffic = sim.traffic
        still = {n.id: 0.0 for n in traffic.npcs}
        for k in range(int(seconds / config.dt)):
            traffic.step_vehicles(config.dt, k * config.dt, *NOBODY)
            for n in traffic.npcs:
                still[n.id] = still[n.id] + config.dt if n.speed < 0.1 else 0.0
        return max(still.values()), len(traffic.npcs)


@pytest.mark.parametrize("town", [3000, 3003])
def test_dense_junctions_never_gridlock(town):
    """60 vehicles in a town: before vehicles kept the box clear and yielded in entry order inside a junction,
    vehicles stood for good (164 s and 224 s of standstill by the end of these four minutes: queues behind two
    vehicles waiting for each other in a junction, or behind one stuck in it behind a full exit lane); now
    the longest standstill is 28 s and 53 s."""
    standstill, count = longest_standstill(town, vehicles=60, seconds=240.0)
    assert count == 60
    assert standstill < 90.0, f"a vehicle stood still for {standstill:.0f} s"
