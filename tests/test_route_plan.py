"""The sparse route plan and the target point (leaderboard downsample_route + TransFuser's next plan point)."""

import math

import numpy as np
from drivestack.sim.conventions import RoadOption
from drivestack.sim.route_plan import plan_indices, target_point

LF, LEFT = int(RoadOption.LANEFOLLOW), int(RoadOption.LEFT)


def test_plan_keeps_command_changes_and_a_point_every_spacing():
    commands = np.array([LF] * 120 + [LEFT] * 20 + [LF] * 61)
    s = np.arange(len(commands), dtype=float)
    plan = plan_indices(commands, s, spacing=50.0)
    assert plan.tolist() == [0, 51, 102, 120, 140, 191, 200]
    assert (np.diff(s[plan]) <= 51.0).all()


def test_target_point_is_the_first_plan_point_past_the_minimum_in_the_ego_frame():
    points = np.stack([np.arange(201.0), np.zeros(201)], axis=1)  # a straight road along world x
    s = np.arange(201.0)
    plan = np.array([0, 51, 102, 200])
    # ego at x = 45 facing +x: plan point 51 is only 6 m ahead (< 7.5), so the target is 102, 57 m ahead
    np.testing.assert_allclose(target_point(points, s, plan, 45.0, 45.0, 0.0, 0.0), [57.0, 0.0])
    np.testing.assert_allclose(target_point(points, s, plan, 40.0, 40.0, 0.0, 0.0), [11.0, 0.0])
    # the ego 3.5 m left of the lane (y right is positive in the ego frame) and turned 90 degrees: CARLA yaw
    np.testing.assert_allclose(target_point(points, s, plan, 40.0, 40.0, -3.5, 0.0), [11.0, 3.5])
    np.testing.assert_allclose(target_point(points, s, plan, 40.0, 40.0, 0.0, 90.0), [0.0, -11.0], atol=1e-5)
    np.testing.assert_allclose(target_point(points, s, plan, 199.0, 199.0, 0.0, 0.0), [1.0, 0.0])  # past the last: the last


def test_embedded_observations_carry_the_target_point_on_the_route(embedded):
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.interface import RouteSpec
    from drivestack.sim.route_plan import TARGET_MIN_AHEAD_M

    expert = ExpertAgent()

    expert.setup(embedded.config)
    obs = embedded.reset(3, RouteSpec(town=0, length=150))
    route, plan = embedded.route, embedded.route_plan
    for _ in range(40):
        x, y = obs.target_point
        assert math.hypot(x, y) >= TARGET_MIN_AHEAD_M - 1.0
        yaw = math.radians(obs.ego.pose.yaw)
        world = (obs.ego.pose.x + x * math.cos(yaw) - y * math.sin(yaw), obs.ego.pose.y + x * math.sin(yaw) + y * math.cos(yaw))
        assert np.hypot(*(route.points[plan] - world).T).min() < 0.05  # it is a plan point
        obs = embedded.step(expert.run_step(obs))
