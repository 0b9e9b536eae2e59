"""Leaderboard arithmetic on hand-made infraction lists."""

import math

import numpy as np
import pytest
from drivestack.planning.evaluation.metrics import RouteResult, RouteScorer, infraction_penalty, route_timeout, summarize
from drivestack.sim.camera import Pose
from drivestack.sim.conventions import ActorKind, RoadOption
from drivestack.sim.interface import Collision, EgoState, Events, Observation, TrafficLightInfo


def test_penalty_is_product_of_leaderboard_coefficients():
    assert infraction_penalty({}) == 1.0
    assert infraction_penalty({"collision_pedestrian": 1}) == pytest.approx(0.5)
    # one vehicle collision, two red lights, one static collision: 0.6 * 0.7^2 * 0.65
    assert infraction_penalty({"collision_vehicle": 1, "red_light": 2, "collision_static": 1}) == pytest.approx(0.6 * 0.49 * 0.65)
    assert infraction_penalty({"stop_sign": 1}, outside_lanes_pct=10.0) == pytest.approx(0.8 * 0.9)
    with pytest.raises(ValueError, match="unknown infraction kinds"):
        infraction_penalty({"speeding": 1})


def test_driving_score_and_summary():
    a = RouteResult("a", 300, 100.0, {"red_light": 1}, 0.0, "completed", 60.0, 300.0)
    b = RouteResult("b", 300, 50.0, {}, 0.0, "blocked", 200.0, 150.0)
    assert a.driving_score == pytest.approx(70.0) and b.driving_score == pytest.approx(50.0)
    s = summarize([a, b])
    assert s.driving_score == pytest.approx(60.0)
    assert s.route_completion == pytest.approx(75.0)
    assert s.infractions_per_km["red_light"] == pytest.approx(1 / 0.45)
    assert route_timeout(100.0) == pytest.approx(85.0)


def _obs(x, speed, collisions=(), red=False, progress=0.0, completed=False):
    return Observation(frame=0, time=x, cameras={}, ego=EgoState(Pose(x=x), speed, 0.0, (2.4, 1.0, 0.7)),
                       route=np.zeros((50, 2)), command=RoadOption.LANEFOLLOW, target_point=np.zeros(2), traffic_light=TrafficLightInfo(),
                       events=Events(collisions=list(collisions), red_light=red, route_completed=completed),
                       route_progress=progress, route_length=100.0, actors=[], speed_limit=8.0)


def test_scorer_counts_collisions_as_the_leaderboard_does():
    scorer = RouteScorer("r")
    hit = lambda kind, actor: Collision(kind, actor)  # noqa: E731
    scorer.update(_obs(0.0, 5.0, [hit(ActorKind.VEHICLE, 7)]))
    scorer.update(_obs(1.0, 5.0, [hit(ActorKind.VEHICLE, 7)]))  # same actor again: not counted
    scorer.update(_obs(2.0, 5.0, [hit(ActorKind.PEDESTRIAN, 8)]))  # within 5 m of the last: not counted
    scorer.update(_obs(20.0, 0.05, [hit(ActorKind.STATIC, -3)]))  # ego standing still: not counted
    scorer.update(_obs(40.0, 5.0, [hit(ActorKind.STATIC, -4)], red=True, progress=50.0))
    result = scorer.result()
    assert result.infractions == {"collision_vehicle": 1, "collision_static": 1, "red_light": 1}
    assert result.completion == pytest.approx(50.0)
    assert result.driving_score == pytest.approx(50.0 * 0.6 * 0.65 * 0.7)
    assert result.distance_m == pytest.approx(40.0)


def test_completion_is_100_when_route_completed():
    scorer = RouteScorer("r")
    scorer.update(_obs(0.0, 5.0, progress=97.5, completed=True))
    assert scorer.result().completion == 100.0 and scorer.result().outcome == "completed"
    assert math.isclose(scorer.result().driving_score, 100.0)
