"""A few steps against a real CARLA server; runs only when CARLA_HOST is set (CARLA_PORT, CARLA_TOWN optional).

CARLA_HOST=localhost CARLA_PORT=2000 pytest -m carla tests/test_carla_integration.py
"""

from __future__ import annotations

import os

import carla
import numpy as np
import pytest
from drivestack.sim.carla.backend import CarlaSimulator
from drivestack.sim.conventions import RoadOption
from drivestack.sim.interface import RouteSpec, VehicleControl
from drivestack.sim.settings import CameraConfig, CarlaConfig, SimConfig, TrafficConfig

pytestmark = [
    pytest.mark.carla,
    pytest.mark.skipif("CARLA_HOST" not in os.environ, reason="needs a CARLA server: set CARLA_HOST (and CARLA_PORT)"),
]


@pytest.fixture
def config() -> SimConfig:
    return SimConfig(
        backend="carla",
        cameras=[CameraConfig(width=320, height=160)],
        traffic=TrafficConfig(vehicles=5, pedestrians=5),
        carla=CarlaConfig(
            host=os.environ.get("CARLA_HOST", "localhost"),
            port=int(os.environ.get("CARLA_PORT", "2000")),
            town=os.environ.get("CARLA_TOWN", "Town01"),
            timeout_s=60.0,
        ),
    )


def test_a_few_steps_and_the_settings_come_back(config):
    probe = carla.Client(config.carla.host, config.carla.port)
    probe.set_timeout(30.0)
    before = probe.get_world().get_settings()
    with CarlaSimulator(config) as sim:
        obs = sim.reset(seed=0, route=RouteSpec(town=config.carla.town, length=100.0))
        assert probe.get_world().get_settings().synchronous_mode
        assert obs.route.shape[0] >= 50 and obs.route_length > 20.0
        assert obs.command in set(RoadOption)
        for _ in range(10):
            last = obs.frame
            obs = sim.step(VehicleControl(throttle=0.4))
            assert obs.frame == last + 1
        cam = obs.cameras["front"]
        assert cam.rgb.shape == (160, 320, 3) and cam.depth.shape == (160, 320)
        assert 0.0 < float(cam.depth.min()) and float(cam.depth.max()) <= 1000.0
        assert int(cam.semantic.max()) <= 28
        assert np.isfinite(obs.ego.speed) and obs.time == pytest.approx(10 * config.dt)
        obs = sim.step(VehicleControl(brake=1.0), render=False)
        assert obs.cameras == {}
    after = probe.get_world().get_settings()
    assert after.synchronous_mode == before.synchronous_mode
    assert after.fixed_delta_seconds == before.fixed_delta_seconds
