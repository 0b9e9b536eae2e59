"""The emergency brake on time to collision (planning/agents/safety.py): when it brakes, and the learned agent
stopping short of a standing car its policy would drive into."""

import math

import numpy as np
import pytest
from drivestack.perception.tracking.tracker import Track
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.safety import EmergencyBrake, SafetyConfig
from drivestack.sim.agent import render_mode
from drivestack.sim.interface import RGB_ONLY
from drivestack.sim.settings import SimConfig, TownConfig

from tests.test_creep import VEHICLE, NeverBrakes, outputs_with


def track(ttc: float) -> Track:
    return Track(id=1, label=VEHICLE, box=np.zeros(4), score=0.9, position=np.zeros(2), velocity=np.zeros(2), ttc=ttc)


def test_brakes_below_ttc_s_to_a_stand_and_counts_when_disabled():
    brake = EmergencyBrake(SafetyConfig(enabled=True, ttc_s=1.0, min_speed=1.0))
    assert not brake.update([track(1.5), track(math.inf)], speed=8.0)
    assert brake.update([track(1.5), track(0.8)], speed=8.0)
    assert brake.update([track(1.4)], speed=4.0)  # braking on: the time to collision grows as the car slows
    assert brake.update([], speed=0.5)  # down to a stand
    assert not brake.update([track(0.5)], speed=0.05)  # never holds a standing car
    assert not brake.update([track(0.5)], speed=0.5)  # nor starts below min_speed
    assert not brake.update([], speed=8.0)
    assert brake.stats() == {"min_ttc_s": 0.8, "ttc_alarm_steps": 1, "emergency_brake_steps": 3}
    counting = EmergencyBrake(SafetyConfig(enabled=False))
    assert not counting.update([track(0.3)], speed=5.0)
    assert counting.stats() == {"min_ttc_s": 0.3, "ttc_alarm_steps": 1, "emergency_brake_steps": 0}
    counting.reset()
    assert counting.stats() == {"min_ttc_s": None, "ttc_alarm_steps": 0, "emergency_brake_steps": 0}


@pytest.mark.parametrize("bad", [{"ttc_s": 0.0}, {"min_speed": -1.0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="safety"):
        SafetyConfig(**bad)


class DrivesTowardAStandingCar(NeverBrakes):
    """Perception sees a car standing in the lane ``x`` metres ahead of the ego's centre; it leaves the image
    once closer than 4 m."""

    def seen(self):
        return outputs_with([(VEHICLE, self.x, 0.0, 30)] if self.x > 4.0 else [])


@pytest.mark.parametrize("enabled", [False, True])
def test_the_learned_agent_stops_short_of_a_car_its_policy_drives_into(enabled):
    from drivestack.planning.agents.learned import PolicyAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RouteSpec

    config = SimConfig(town=TownConfig(grid=3))
    driver = DrivesTowardAStandingCar(25.0, config.dt)
    agent = PolicyAgent(driver, creep=CreepConfig(enabled=False), safety=SafetyConfig(enabled=enabled))
    agent.setup(config)
    assert render_mode(agent) == RGB_ONLY  # it drives on RGB alone, as `drive` renders for it
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=6000, length=100))
        top_speed = 0.0
        while driver.x > 2.4 and obs.time < 8.0:  # 2.4 m: the car's front bumper reaches the standing car
            obs = sim.step(agent(obs), render=RGB_ONLY)
            top_speed = max(top_speed, obs.ego.speed)
            if obs.ego.speed < 0.1 and top_speed > 5.0:
                break
    stats = agent.stats()
    assert top_speed > 5.0 and stats["ttc_alarm_steps"] > 0 and stats["min_ttc_s"] < 1.0
    if enabled:
        assert driver.x > 3.0 and obs.ego.speed < 0.1  # stopped with room to spare
        assert stats["emergency_brake_steps"] > stats["ttc_alarm_steps"]  # it braked on to a stand
    else:
        assert driver.x <= 2.4 and obs.ego.speed > 3.0  # hit it at speed
        assert stats["emergency_brake_steps"] == 0
