"""Route planning on a small hand-made topology: A*, RoadOption per point, lane changes, resampling."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest
from drivestack.sim.carla.routing import Route, RoutePlanner, Segment, resample, topology_segments
from drivestack.sim.conventions import RoadOption
from drivestack.sim.route_plan import ANNOUNCE_M

STEP = 2.0


def line(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    n = max(int(math.hypot(x1 - x0, y1 - y0) / STEP), 1)
    t = np.linspace(0.0, 1.0, n + 1)
    yaw = math.degrees(math.atan2(y1 - y0, x1 - x0))
    return np.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0), np.full_like(t, yaw)], axis=1)


def arc(cx: float, cy: float, r: float, a0: float, a1: float) -> np.ndarray:
    """Points on a circle from angle a0 to a1 (degrees, CARLA frame), heading along the motion."""
    n = max(int(abs(math.radians(a1 - a0)) * r / STEP), 2)
    a = np.radians(np.linspace(a0, a1, n + 1))
    yaw = np.degrees(a) + (90.0 if a1 > a0 else -90.0)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a), yaw], axis=1)


def junction_topology() -> list[Segment]:
    """A west approach with two lanes into a junction at the origin (x east, y south as in CARLA).

    The left lane (y = 0) goes straight east or turns left (north, -y); the right lane (y = 3.5)
    turns right (south, +y). Lane changes between the two approach lanes are allowed.
    """
    a, a2 = (1, 0, -1), (1, 0, -2)
    return [
        Segment(a, line(-60, 0, -10, 0), right=a2),
        Segment(a2, line(-60, 3.5, -10, 3.5), left=a),
        Segment((10, 0, -1), line(-10, 0, 10, 0), is_junction=True),  # straight
        Segment((11, 0, -1), arc(-10, -10, 10, 90, 0), is_junction=True),  # left
        Segment((12, 0, -1), arc(-10, 10, 6.5, -90, 0), is_junction=True),  # right
        Segment((2, 0, -1), line(10, 0, 60, 0)),  # east exit
        Segment((3, 0, -1), line(0, -10, 0, -60)),  # north exit
        Segment((4, 0, -1), line(-3.5, 10, -3.5, 60)),  # south exit
    ]


def option_runs(route: Route) -> list[RoadOption]:
    """The route's options with consecutive repeats collapsed."""
    runs = [RoadOption(int(route.options[0]))]
    for o in route.options[1:]:
        if o != runs[-1]:
            runs.append(RoadOption(int(o)))
    return runs


@pytest.fixture(scope="module")
def planner() -> RoutePlanner:
    return RoutePlanner(junction_topology())


def test_straight_left_right_at_a_junction(planner):
    straight = planner.plan([(-50, 0), (40, 0)])
    assert option_runs(straight) == [RoadOption.LANEFOLLOW, RoadOption.STRAIGHT, RoadOption.LANEFOLLOW]
    assert straight.length == pytest.approx(90.0, abs=1.0)
    left = planner.plan([(-50, 0), (0, -40)])
    assert option_runs(left) == [RoadOption.LANEFOLLOW, RoadOption.LEFT, RoadOption.LANEFOLLOW]
    np.testing.assert_allclose(left.points[-1], (0, -40), atol=1.0)
    right = planner.plan([(-50, 3.5), (-3.5, 40)])
    assert option_runs(right) == [RoadOption.LANEFOLLOW, RoadOption.RIGHT, RoadOption.LANEFOLLOW]


def test_turn_options_cover_the_junction_and_are_announced_before_it(planner):
    """LEFT on the junction points and on the ANNOUNCE_M metres before them, as in the embedded simulator."""
    left = planner.plan([(-50, 0), (0, -40)])
    in_turn = left.options == RoadOption.LEFT
    xs, ys = left.points[in_turn].T
    assert -11.0 - ANNOUNCE_M - 0.5 <= xs.min() <= -ANNOUNCE_M and xs.max() <= 0.5
    assert ys.min() >= -10.5 and ys.max() <= 0.5


def test_lane_change_is_planned_when_the_turn_needs_the_other_lane(planner):
    route = planner.plan([(-50, 0), (-3.5, 40)])
    runs = option_runs(route)
    assert RoadOption.CHANGELANERIGHT in runs and RoadOption.RIGHT in runs
    assert runs.index(RoadOption.CHANGELANERIGHT) < runs.index(RoadOption.RIGHT)
    before_junction = route.points[route.points[:, 0] < -12]
    assert before_junction[0, 1] == pytest.approx(0.0, abs=0.1)  # starts in the left lane
    assert before_junction[-1, 1] == pytest.approx(3.5, abs=0.1)  # reaches the junction in the right lane


def test_route_points_are_one_metre_apart(planner):
    route = planner.plan([(-50, 0), (0, -40)])
    gaps = np.hypot(*np.diff(route.points, axis=0).T)
    assert np.all(gaps <= 1.0 + 1e-6) and np.all(gaps[:-1] > 0.95)  # chords of 1 m arcs on the curve
    np.testing.assert_allclose(route.s[:-1], np.arange(len(route.s) - 1))


def test_goal_behind_on_the_same_lane_needs_a_loop_or_fails(planner):
    with pytest.raises(ValueError, match="no route"):
        planner.plan([(-20, 0), (-50, 0)])  # this map has no loop back


def test_random_route_is_reproducible_and_bounded(planner):
    a = planner.random_route((-55, 0), 60.0, np.random.default_rng(3))
    b = planner.random_route((-55, 0), 60.0, np.random.default_rng(3))
    np.testing.assert_array_equal(a.points, b.points)
    assert 55.0 <= a.length <= 60.0 + 1e-6
    assert a.options[0] == RoadOption.LANEFOLLOW


def test_ahead_in_the_ego_frame():
    route = resample(np.array([[0.0, 0.0], [0.0, 10.0]]), np.array([4, 4]))
    ahead = route.ahead(2.0, 0.0, 2.0, 90.0, 12)  # ego at (0, 2) heading +y (yaw 90)
    np.testing.assert_allclose(ahead[:9], np.stack([np.arange(9.0), np.zeros(9)], axis=1), atol=1e-9)
    np.testing.assert_allclose(ahead[9:], [[8.0, 0.0]] * 3, atol=1e-9)  # padded with the last point
    side = route.ahead(0.0, 1.0, 0.0, 90.0, 1)  # ego 1 m east of the route, facing +y: route is on its right
    np.testing.assert_allclose(side, [[0.0, 1.0]], atol=1e-9)


def test_option_at_gives_the_point_ahead():
    route = resample(np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0]]), np.array([4, 4, 1]))
    assert route.option_at(2.0) == RoadOption.LANEFOLLOW
    assert route.option_at(5.5) == RoadOption.LEFT


class StubWaypoint:
    """A lane point of a straight two-lane road (server-side object stand-in)."""

    def __init__(self, lane_id: int, s: float, length: float):
        self.road_id, self.section_id, self.lane_id, self.s, self.length = 7, 0, lane_id, s, length
        self.is_junction = False
        self.lane_type = carla.LaneType.Driving
        self.lane_change = carla.LaneChange.Right if lane_id == -1 else carla.LaneChange.Left
        self.transform = carla.Transform(carla.Location(x=s, y=3.5 * (-lane_id - 1), z=0.0), carla.Rotation())

    def next(self, distance: float) -> list[StubWaypoint]:
        return [StubWaypoint(self.lane_id, self.s + distance, self.length)] if self.s + distance <= self.length else []

    def get_right_lane(self) -> StubWaypoint:
        return StubWaypoint(-2, self.s, self.length)

    def get_left_lane(self) -> StubWaypoint:
        return StubWaypoint(-1, self.s, self.length)


class StubMap:
    def get_topology(self):
        return [(StubWaypoint(lane, 0.0, 21.0), StubWaypoint(lane, 21.0, 21.0)) for lane in (-1, -2)]


def test_topology_segments_sample_lanes_and_lane_changes():
    first, second = topology_segments(StubMap(), resolution=2.0)
    assert first.key == (7, 0, -1) and first.right == (7, 0, -2) and first.left is None
    assert second.left == (7, 0, -1) and second.right is None
    assert first.points[0, 0] == 0.0 and first.points[-1, 0] == 21.0
    assert np.all(np.diff(first.points[:, 0]) <= 2.0 + 1e-9) and len(first.points) == 12
    np.testing.assert_allclose(second.points[:, 1], 3.5)
