"""Route results in the CARLA leaderboard's results format (leaderboard/utils/statistics_manager.py), and the
scorer's infraction events they are written from."""

from __future__ import annotations

import json

import numpy as np
import pytest
from drivestack.planning.evaluation.leaderboard import INFRACTION_KEYS, LABELS, write_leaderboard
from drivestack.planning.evaluation.metrics import Infraction, RouteResult, RouteScorer
from drivestack.sim.camera import Pose
from drivestack.sim.conventions import ActorKind, RoadOption
from drivestack.sim.interface import Collision, EgoState, Events, Observation, TrafficLightInfo


def results() -> list[RouteResult]:
    hit = Infraction("collision_pedestrian", 120, 6.0, 12.5, -3.25, 0.0, "pedestrian", 42)
    red = Infraction("red_light", 300, 15.0, 40.0, 2.0, 0.0, "", 1003)
    return [
        RouteResult("a", 300.0, 100.0, {"collision_pedestrian": 1, "red_light": 1}, 10.0, "completed", 60.0, 300.0, [hit, red]),
        RouteResult("b", 200.0, 50.0, {}, 0.0, "deviated", 30.0, 110.0, [Infraction("route_deviation", 600, 30.0, 5.0, 6.0)]),
        RouteResult("c", 500.0, 20.0, {}, 0.0, "timeout", 405.0, 100.0),
    ]


def test_leaderboard_json_has_the_leaderboards_structure_and_arithmetic(tmp_path):
    routes = results()
    write_leaderboard(routes, tmp_path / "leaderboard.json")
    data = json.loads((tmp_path / "leaderboard.json").read_text())
    assert set(data) == {"_checkpoint", "entry_status", "eligible", "sensors", "values", "labels"}
    assert data["entry_status"] == "Finished" and data["eligible"] is True
    checkpoint = data["_checkpoint"]
    assert set(checkpoint) == {"global_record", "progress", "records"} and checkpoint["progress"] == [3, 3]

    records = checkpoint["records"]
    assert [(r["route_id"], r["index"]) for r in records] == [("a", 0), ("b", 1), ("c", 2)]
    assert [r["status"] for r in records] == ["Completed", "Failed - Agent deviated from the route", "Failed - Agent timed out"]
    for record, route in zip(records, routes):
        assert set(record) == {"route_id", "index", "status", "infractions", "scores", "meta"}
        assert list(record["infractions"]) == list(INFRACTION_KEYS)
        assert all(isinstance(m, str) for messages in record["infractions"].values() for m in messages)
        scores = record["scores"]
        assert scores["score_route"] == route.completion and scores["score_penalty"] == pytest.approx(route.penalty)
        assert scores["score_composed"] == pytest.approx(scores["score_route"] * scores["score_penalty"])
        assert record["meta"] == {"route_length": route.route_length, "duration_game": route.duration_s}

    a, b, c = (r["infractions"] for r in records)
    assert a["collisions_pedestrian"] == ["Agent collided against object with type=pedestrian and id=42 at (x=12.5, y=-3.25, z=0.0)"]
    assert a["red_light"] == ["Agent ran a red light 1003 at (x=40.0, y=2.0, z=0.0)"]
    assert a["outside_route_lanes"] == ["Agent went outside its route lanes for about 30.0 meters (10.0% of the completed route)"]
    assert records[0]["scores"]["score_composed"] == pytest.approx(100.0 * 0.5 * 0.7 * 0.9)
    assert b["route_dev"] == ["Agent deviated from the route at (x=5.0, y=6.0, z=0.0)"] and b["route_timeout"] == []
    assert c["route_timeout"] == ["Route timeout."] and not any(c[k] for k in INFRACTION_KEYS if k != "route_timeout")

    glob = checkpoint["global_record"]
    assert glob["route_id"] == -1 and glob["index"] == -1 and glob["status"] == "Failed"
    for key in ("score_route", "score_penalty", "score_composed"):
        values = [r["scores"][key] for r in records]
        assert glob["scores"][key] == pytest.approx(np.mean(values))
        assert glob["scores_std_dev"][key] == pytest.approx(np.std(values, ddof=1))
    km = (300 * 1.0 + 200 * 0.5 + 500 * 0.2) / 1000  # along the routes: length x completion
    assert glob["infractions"]["collisions_pedestrian"] == pytest.approx(1 / km)
    assert glob["infractions"]["route_timeout"] == pytest.approx(1 / km) and glob["infractions"]["collisions_vehicle"] == 0
    assert glob["meta"]["total_length"] == 1000.0 and glob["meta"]["exceptions"] == [["b", 1, records[1]["status"]], ["c", 2, records[2]["status"]]]
    assert len(data["values"]) == len(data["labels"]) == len(LABELS) == 12
    assert data["values"][:4] == [f"{glob['scores']['score_composed']:.3f}", f"{glob['scores']['score_route']:.3f}",
                                  f"{glob['scores']['score_penalty']:.3f}", f"{1 / km:.3f}"]  # fmt: skip


def _obs(frame: int, x: float, y: float, collisions=(), speed: float = 5.0) -> Observation:
    return Observation(frame=frame, time=frame * 0.05, cameras={}, ego=EgoState(Pose(x=x, y=y), speed, 0.0, (2.4, 1.0, 0.7)),
                       route=np.zeros((50, 2)), command=RoadOption.LANEFOLLOW, target_point=np.zeros(2), traffic_light=TrafficLightInfo(),
                       events=Events(collisions=list(collisions)), route_progress=0.0, route_length=100.0, actors=[], speed_limit=8.0)  # fmt: skip


def test_scorer_records_a_collision_once_with_where_and_when():
    scorer = RouteScorer("r")
    scorer.update(_obs(10, 3.0, 1.5))
    for frame in (11, 12, 13):  # the same contact, reported on three steps
        scorer.update(_obs(frame, 3.0 + 0.1 * (frame - 11), 1.5, [Collision(ActorKind.VEHICLE, 7)]))
    result = scorer.result()
    assert result.events == [Infraction("collision_vehicle", 11, pytest.approx(0.55), 3.0, 1.5, 0.0, "vehicle", 7)]
    assert result.infractions == {"collision_vehicle": 1}


def test_route_records_with_and_without_events_load(tmp_path):
    from drivestack.planning.evaluation.suite import finished_result

    route = results()[0]
    (tmp_path / "new.json").write_text(json.dumps({"status": "finished", **route.to_dict()}))
    assert finished_result(tmp_path / "new.json") == route
    old = {k: v for k, v in route.to_dict().items() if k != "events"}  # a record written before events were kept
    (tmp_path / "old.json").write_text(json.dumps({"status": "finished", **old}))
    assert finished_result(tmp_path / "old.json").events == []
