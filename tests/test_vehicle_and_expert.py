"""Ego dynamics, the waypoint controller, and the expert driving whole routes."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.control import ControllerConfig, WaypointController
from drivestack.sim.conventions import TrafficLightState
from drivestack.sim.embedded.vehicle import BicycleState, VehicleParams, step_bicycle
from drivestack.sim.interface import RouteSpec, TrafficLightInfo, VehicleControl
from drivestack.sim.settings import SimConfig

P = VehicleParams()


def drive_bicycle(control, steps, state=None):
    state = state or BicycleState(0.0, 0.0, 0.0)
    for _ in range(steps):
        state = step_bicycle(state, control, 0.05, P)
    return state


def test_throttle_accelerates_brake_stops_never_reverses():
    fast = drive_bicycle(VehicleControl(throttle=1.0), 100)
    assert 8.0 < fast.speed < P.max_speed
    stopped = drive_bicycle(VehicleControl(brake=1.0), 60, fast)
    assert stopped.speed == 0.0
    assert drive_bicycle(VehicleControl(throttle=0.5, reverse=True), 40).speed < 0


def test_positive_steer_turns_right_in_carla_frame():
    s = drive_bicycle(VehicleControl(throttle=0.5, steer=0.5), 40)
    assert s.yaw > 0 and s.y > 0


def test_steering_response_falls_with_speed():
    slow = drive_bicycle(VehicleControl(steer=1.0), 40, BicycleState(0, 0, 0, speed=3.0))
    fast = drive_bicycle(VehicleControl(steer=1.0), 40, BicycleState(0, 0, 0, speed=15.0))
    assert fast.wheel_angle < slow.wheel_angle


@pytest.mark.parametrize("curvature", [0.0, 1 / 25.0])
def test_controller_tracks_straight_and_curve(curvature):
    ctrl = WaypointController(ControllerConfig(), 0.05)
    s = np.arange(0, 400, 1.0)
    if curvature:
        path = np.stack([np.sin(s * curvature) / curvature, (1 - np.cos(s * curvature)) / curvature], 1)
    else:
        path = np.stack([s, np.zeros_like(s)], 1)
    state = BicycleState(0.0, 0.5, 0.0)
    errors = []
    for k in range(400):
        c, sn = math.cos(state.yaw), math.sin(state.yaw)
        d = path - (state.x, state.y)
        local = np.stack([d[:, 0] * c + d[:, 1] * sn, -d[:, 0] * sn + d[:, 1] * c], 1)
        ahead = local[np.argmin(np.hypot(*d.T)):][:50]
        state = step_bicycle(state, ctrl.control(ahead, 6.0, state.speed), 0.05, P)
        if k > 100:
            errors.append(np.hypot(*(path - (state.x, state.y)).T).min())
    assert max(errors) < 0.5
    assert abs(state.speed - 6.0) < 0.5


def test_expert_completes_routes_without_infractions(sim_config):
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.planning.evaluation.metrics import RouteScorer, route_timeout
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    with EmbeddedSimulator(sim_config) as sim:
        for seed in range(3):
            obs = sim.reset(seed, RouteSpec(town=10 + seed, length=150))
            expert = ExpertAgent()
            expert.setup(sim_config)
            scorer = RouteScorer(f"r{seed}", timeout_s=route_timeout(obs.route_length))
            while not scorer.done:
                obs = sim.step(expert.run_step(obs), render=False)
                scorer.update(obs)
            result = scorer.result()
            assert result.outcome == "completed" and result.completion == 100.0
            assert result.infractions == {}, result.infractions


def test_expert_verb_records_each_route_and_resumes(tmp_path, sim_config, capsys):
    import json

    from drivestack.planning.evaluation.drive import ExpertEvalConfig, evaluate_expert

    config = ExpertEvalConfig(routes=2, towns=[20], route_length=80.0, workers=1, out=str(tmp_path), sim=sim_config)
    assert evaluate_expert(config) == 0
    records = sorted((tmp_path / "routes").glob("*.json"))
    assert [p.stem for p in records] == ["town0020_route000", "town0020_route001"]
    assert all(json.loads(p.read_text())["completion"] == 100.0 for p in records)
    before = [p.stat().st_mtime_ns for p in records]
    assert evaluate_expert(config) == 0  # resumes: nothing is driven again
    assert [p.stat().st_mtime_ns for p in records] == before
    assert "routes 2: driving score" in capsys.readouterr().out


def test_expert_standing_at_the_line_stays_on_yellow():
    """Generated-test route t090: the expert stood 1.6 m before the line (held by a walker) when the light turned
    yellow, took 'a firm stop no longer fits' for true (it measured to its stopping point 2 m before the line),
    drove off and crossed on red. Standing, it stays; at speed near the line, it goes."""
    expert = ExpertAgent()
    expert.setup(SimConfig())
    ego = SimpleNamespace(extent=P.extent)
    standing = SimpleNamespace(traffic_light=TrafficLightInfo(TrafficLightState.YELLOW, P.extent[0] + 1.6, actor_id=1), ego=ego)
    assert expert._light_speed(standing, speed=0.0) == 0.0
    fast = SimpleNamespace(traffic_light=TrafficLightInfo(TrafficLightState.YELLOW, P.extent[0] + 5.0, actor_id=2), ego=ego)
    assert expert._light_speed(fast, speed=8.0) == math.inf  # a stop within 5 m from 8 m/s needs 6.4 m/s^2
