"""Procedural towns and routes: layouts from seeds, a consistent lane graph, RoadOption commands."""

import numpy as np
import pytest
from drivestack.sim.conventions import RoadOption, Tag, TrafficLightState
from drivestack.sim.embedded.route import random_route, route_through
from drivestack.sim.embedded.town import Town
from drivestack.sim.embedded.town_scene import TownScene
from drivestack.sim.settings import TownConfig, TrafficConfig


@pytest.fixture(scope="module")
def town():
    return Town(TownConfig(seed=4, grid=3))


def test_same_seed_same_town_other_seed_other_town():
    a, b, c = Town(TownConfig(seed=1, grid=3)), Town(TownConfig(seed=1, grid=3)), Town(TownConfig(seed=2, grid=3))
    assert all(np.array_equal(x.center, y.center) for x, y in zip(a.roads, b.roads))
    assert not all(np.array_equal(x.center, y.center) for x, y in zip(a.roads, c.roads))


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_lane_graph_has_no_dead_ends_and_no_gaps(seed):
    town = Town(TownConfig(seed=seed))
    for lane in town.lanes:
        assert lane.successors, f"lane {lane.id} is a dead end"
        for s in lane.successors:
            gap = np.hypot(*(town.lanes[s].line.points[0] - lane.line.points[-1]))
            assert gap < 1e-6, f"lane {lane.id} -> {s} leaves a gap of {gap:.3f} m"


def test_town_has_junction_kinds_and_turns():
    town = Town(TownConfig(seed=0))
    degrees = {len(j.roads) for j in town.junctions}
    assert {3, 4} <= degrees
    options = {lane.option for lane in town.lanes if lane.junction is not None}
    assert {RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT} <= options
    assert any(r.lanes == 2 for r in town.roads) and any(r.lanes == 1 for r in town.roads)


def test_left_turns_start_in_the_leftmost_lane(town):
    for lane in town.lanes:
        if lane.option == RoadOption.LEFT:
            assert town.lanes[lane.source].index == 0
        if lane.option == RoadOption.RIGHT:
            src = town.lanes[lane.source]
            assert src.right is None


def test_right_hand_traffic(town):
    """A lane lies to the right of its road's centre line, seen in its driving direction."""
    for lane in town.lanes[:20]:
        if lane.road is None:
            continue
        center = town.roads[lane.road].center
        mid = len(lane.line.points) // 2
        p = lane.line.points[mid]
        from drivestack.sim.geometry import Polyline

        line = Polyline(center if lane.forward else center[::-1])
        _, offset = line.project(p)
        assert offset > 0


def test_signal_cycle_gives_each_arm_green_and_pedestrians_a_phase():
    town = Town(TownConfig(seed=0), TrafficConfig())
    jn = next(j for j in town.junctions if j.lit)
    times = np.arange(0, 120, 0.5)
    for arm in range(len(jn.roads)):
        states = {town.light_state(jn.id, arm, t) for t in times}
        assert states == {TrafficLightState.GREEN, TrafficLightState.YELLOW, TrafficLightState.RED}
    for t in times:
        greens = sum(town.light_state(jn.id, a, t) != TrafficLightState.RED for a in range(len(jn.roads)))
        assert greens <= 1, "split phasing: one approach at a time"
        if town.pedestrian_walk_time(jn.id, t) > 0:
            assert greens == 0


def test_random_route_commands_and_spacing(town):
    route = random_route(town, np.random.default_rng(3), 250.0)
    step = np.hypot(*np.diff(route.points, axis=0).T)
    assert 0.4 < step.min() and step.max() < 1.6
    assert route.length == pytest.approx(250.0, abs=2)
    assert set(np.unique(route.commands)) <= {int(o) for o in RoadOption if o != RoadOption.VOID}


def test_route_through_trip_points(town):
    a, b = town.lanes[town.road_lanes[0]], town.lanes[town.road_lanes[-1]]
    route = route_through(town, [tuple(a.line.points[2]), tuple(b.line.points[-3])])
    assert np.hypot(*(route.points[0] - a.line.points[2])) < 1.5
    assert np.hypot(*(route.points[-1] - b.line.points[-3])) < 2.5


def test_ground_map_paints_roads_lines_and_sidewalks(town):
    scene = TownScene(town)
    tags = set(np.unique(scene.tags))
    assert {Tag.ROADS, Tag.ROAD_LINES, Tag.SIDEWALKS, Tag.TERRAIN} <= tags
    for lane in town.lanes[:30]:
        px = ((lane.line.points - scene.origin) / scene.res).astype(int)
        on_road = np.isin(scene.tags[px[:, 1], px[:, 0]], [Tag.ROADS, Tag.ROAD_LINES])
        assert on_road.mean() > 0.98, f"lane {lane.id} leaves the painted road"
    box_tags = set(np.unique(scene.boxes.tag))
    assert {Tag.BUILDINGS, Tag.VEGETATION, Tag.POLES, Tag.TRAFFIC_LIGHT} <= box_tags


@pytest.mark.parametrize("seed", range(4))
def test_each_arm_has_a_far_side_head_in_view_of_the_stop_line_and_off_the_road(seed):
    town = Town(TownConfig(seed=seed))
    lanes = np.concatenate([l.line.points for l in town.lanes])
    arms = [(j.id, arm) for j in town.junctions if j.lit for arm in range(len(j.roads))]
    far = [l for l in town.lights if l.far]
    assert len(far) >= 0.9 * len(arms)
    for light in far:
        near = next(l for l in town.lights if (l.junction, l.arm) == (light.junction, light.arm) and not l.far)
        assert town.lane_light(town.lanes[[l.id for l in town.lanes if l.road == light.road and l.end_junction == light.junction][0]]) is near
        lane = town._road_lanes(light.road, light.junction)[-1]
        x, y, h = lane.line.at(lane.stop_s - 3.0)  # where a car waits
        ahead = np.array([light.x - x, light.y - y])
        angle = np.degrees(np.arctan2(ahead[1], ahead[0]) - h)
        assert abs((angle + 180) % 360 - 180) < 40, "in a 90-degree camera's view from the stop line"
        assert 15 < np.hypot(*ahead) < 50
        assert np.hypot(*(lanes - (light.x, light.y)).T).min() > 0.5 * town.config.lane_width + 0.9, "pole clear of lanes"
