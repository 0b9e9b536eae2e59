"""The red-light stop (planning/agents/red_light.py): reading the nearest head, planning and holding a stop,
passing on green, and the learned agent standing short of a red light its policy drives through."""

import numpy as np
import pytest
from drivestack.perception.classes import ClassMap
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.gates import gate_detections
from drivestack.planning.agents.red_light import RedLightConfig, RedLightStop
from drivestack.planning.agents.safety import SafetyConfig
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig

from tests.test_creep import GREEN, RED, NeverBrakes, outputs_with

CAMERA = CameraConfig()
HEAD_BOTTOM = 3.2  # m above the road, RedLightConfig.head_height
DT = 0.05


def heads(*seen: tuple[int, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded detections of heads (class, metres ahead of the camera, metres right), 1 m tall boxes."""
    f = CAMERA.width / 2  # 90 degree field of view
    rows = [(cls, CAMERA.x + ahead, right, max(round(f / ahead), 2)) for cls, ahead, right in seen]
    return gate_detections(*outputs_with(rows, z=HEAD_BOTTOM), CAMERA.width, 0.4)


def layer(**overrides) -> RedLightStop:
    return RedLightStop(RedLightConfig(**overrides), CAMERA, ClassMap(), DT)


def approach(stop: RedLightStop, ahead: float, speed: float, state, steps: int) -> tuple[float, float]:
    """Drive toward a head ``ahead`` metres on, wanting 8 m/s, braking at most 5 m/s^2; (ahead, speed) after."""
    for _ in range(steps):
        visible = ahead > 5.0  # the near head leaves the top of the image
        cap = stop.update(*heads((state, ahead, 3.0)) if visible else heads(), speed=speed, target=8.0)
        speed = max(speed - 5.0 * DT, min(cap, speed + 2.0 * DT), 0.0)
        ahead -= speed * DT
    return ahead, speed


def test_reads_the_nearest_head_right_of_the_path():
    stop = layer()
    assert stop.nearest_head(*heads((RED, 20.0, 3.0))) == pytest.approx((20.0, True), abs=1.5)
    assert stop.nearest_head(*heads((GREEN, 12.0, 3.0), (RED, 25.0, 4.0)))[1] is False  # the nearer head decides
    assert stop.nearest_head(*heads((RED, 20.0, -3.0))) is None  # left of the path: another road's
    # at a corner the car's own head stands right of a crossing road's head seen at an angle
    assert stop.nearest_head(*heads((RED, 10.0, 2.0), (GREEN, 10.0, 3.5)))[1] is False
    assert stop.nearest_head(*heads((GREEN, 10.0, 2.0), (RED, 10.0, 3.5)))[1] is True
    assert stop.nearest_head(*heads()) is None


def test_stops_short_of_a_red_head_holds_then_lets_go():
    stop = layer(hold_s=5.0)
    ahead, speed = approach(stop, 30.0, 8.0, RED, steps=100)
    assert speed < 0.1 and 5.0 < ahead < 9.0  # stood about stop_offset (7 m) short of the head, in view of it
    assert stop.stats()["red_light_stop_steps"] > 0
    _, speed = approach(stop, ahead, speed, RED, steps=round(4.0 / DT))
    assert speed < 0.1  # still red: holds
    _, speed = approach(stop, ahead, speed, RED, steps=round(2.0 / DT))
    assert speed > 0.5  # hold_s passed: the policy has the car again


def test_holds_while_the_head_reads_red_and_goes_when_it_is_no_longer_read():
    stop = layer(lost_s=2.0)
    ahead, speed = approach(stop, 30.0, 8.0, RED, steps=100)
    _, speed = approach(stop, ahead, speed, RED, steps=round(40.0 / DT))
    assert speed < 0.1  # a 40 s red: still standing (hold_s is 45 s)
    for _ in range(round(1.5 / DT)):
        assert stop.update(*heads(), speed=0.0, target=8.0) == 0.0  # the head unread for less than lost_s
    for _ in range(round(1.0 / DT)):
        cap = stop.update(*heads(), speed=0.0, target=8.0)
    assert cap == 8.0  # unread for lost_s: the policy has the car again


def test_goes_on_green_and_ignores_the_crossing_heads_in_the_junction():
    stop = layer()
    ahead, speed = approach(stop, 30.0, 8.0, RED, steps=100)
    assert speed < 0.1
    assert stop.update(*heads((GREEN, ahead, 3.0)), speed=0.0, target=8.0) == 0.0  # one frame: could be misread
    assert stop.update(*heads((RED, ahead, 3.0)), speed=0.0, target=8.0) == 0.0
    caps = [stop.update(*heads((GREEN, ahead, 3.0)), speed=0.0, target=8.0) for _ in range(3)]
    assert caps == [0.0, 0.0, 8.0]  # green on confirm_steps frames in a row: the car goes
    ahead, speed = approach(stop, ahead, 0.0, GREEN, steps=40)
    assert speed > 1.0
    assert stop.update(*heads((RED, 9.0, 6.0)), speed=speed, target=8.0) == 8.0  # a crossing road's head, seen from the side


def test_too_close_to_stop_it_passes_and_disabled_it_only_counts():
    stop = layer()
    assert stop.update(*heads((RED, 9.0, 3.0)), speed=8.0, target=8.0) == 8.0  # 2 m to the stop point at 8 m/s
    assert stop.stats()["red_light_stop_steps"] == 0
    counting = layer(enabled=False)
    _, speed = approach(counting, 30.0, 8.0, RED, steps=80)
    assert speed > 7.0 and counting.stats()["red_light_stop_steps"] > 0


def test_stops_at_the_line_when_the_head_it_passes_turns_red_and_goes_on_when_too_close():
    stop = layer()
    ahead, speed = approach(stop, 20.0, 6.0, GREEN, steps=20)  # green from 15 m: passing, watching the head
    assert speed > 5.0 and stop.passing > 0
    ahead, speed = approach(stop, ahead, speed, RED, steps=120)
    assert speed < 0.1 and 1.0 < ahead < 3.0  # stood line_margin (2 m) short of the head, at the line
    late = layer()
    ahead, speed = approach(late, 14.0, 8.0, GREEN, steps=10)
    ahead, speed = approach(late, ahead, speed, RED, steps=40)
    assert ahead < 0.0 and speed > 5.0  # turned red 10 m short at 8 m/s: the dilemma zone, the car goes on


@pytest.mark.parametrize("bad", [{"right_of": 1.0}, {"decel": 0.0}, {"hold_s": -1.0}, {"confirm_steps": 0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="red_light"):
        RedLightConfig(**bad)


class DrivesThroughARedLight(NeverBrakes):
    """Perception sees a red head ``x`` metres ahead of the camera, 3 m right of the lane, until it leaves
    the top of the image."""

    def seen(self):
        return outputs_with([(RED, CAMERA.x + self.x, 3.0, max(round(160 / self.x), 2))] if self.x > 5.0 else [], z=HEAD_BOTTOM)


@pytest.mark.parametrize("enabled", [False, True])
def test_the_learned_agent_stands_short_of_a_red_light_its_policy_drives_through(enabled):
    from drivestack.planning.agents.learned import PolicyAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RouteSpec

    config = SimConfig(town=TownConfig(grid=3))
    driver = DrivesThroughARedLight(30.0, config.dt)
    safety = SafetyConfig(red_light=RedLightConfig(enabled=enabled))
    agent = PolicyAgent(driver, creep=CreepConfig(enabled=False), safety=safety)
    agent.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=6000, length=100))
        while driver.x > 0.0 and obs.time < 10.0:
            obs = sim.step(agent(obs))
    assert agent.stats()["red_light_stop_steps"] > 0
    if enabled:
        assert driver.x > 4.0 and obs.ego.speed < 0.1 and agent.debug.target_speed == 0.0
    else:
        assert driver.x <= 0.0  # drove past the head
