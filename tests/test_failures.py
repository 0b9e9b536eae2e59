"""`drivestack failures`: a drive's routes grouped by kind, outcomes and infractions counted, the worst listed."""

import csv
import json
from dataclasses import asdict, fields

import pytest
from drivestack.cli import main
from drivestack.planning.evaluation.failures import route_kind
from drivestack.planning.evaluation.metrics import RouteResult
from drivestack.planning.evaluation.stops import read_stops
from drivestack.planning.evaluation.trace import TraceRow


def write_run(folder, routes):
    (folder / "routes").mkdir(parents=True)
    for name, completion, outcome, infractions in routes:
        result = RouteResult(name, 250.0, completion, infractions, 0.0, outcome, 60.0, 2.5 * completion)
        (folder / "routes" / f"{name}.json").write_text(json.dumps({"status": "finished", **result.to_dict()}))
    (folder / "routes" / "v009_mixed_t4001.json").write_text('{"name": "v009_mixed_t4001", "status": "started"}')  # not counted


@pytest.mark.parametrize(("name", "kind"), [("v003_crowdlong_t4000", "crowdlong"), ("t042_pedestrians_t5008", "pedestrians"), ("town0020_route001", "-")])
def test_route_kind_is_the_mix_in_a_generated_name(name, kind):
    assert route_kind(name) == kind


def test_failures_counts_outcomes_and_infractions_by_kind(tmp_path, capsys):
    write_run(tmp_path, [("v000_dense_t4000", 100.0, "completed", {}),
                         ("v001_dense_t4000", 40.0, "blocked", {"collision_vehicle": 1}),
                         ("v002_mixed_t4000", 100.0, "completed", {"red_light": 2})])  # fmt: skip
    assert main(["failures", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| *"): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    head = rows["route kind"]
    dense, mixed, total = rows["dense"], rows["mixed"], rows["all"]
    column = lambda row, name: row[head.index(name)].strip(" |")  # noqa: E731
    assert column(dense, "routes") == "2" and column(dense, "blocked") == "1" and column(dense, "collision_vehicle") == "1"
    assert column(mixed, "red_light") == "2" and column(total, "routes") == "3" and column(total, "completed") == "2"
    assert float(column(dense, "driving score")) == pytest.approx((100.0 + 40.0 * 0.6) / 2)  # a vehicle collision: x0.6
    worst = [line for line in text.splitlines() if line.startswith("| v0")]
    assert worst[0].startswith("| v001_dense_t4000 |") and "collision_vehicle 1" in worst[0]
    assert (tmp_path / "failures.md").read_text().strip() == text.strip()


def test_failures_of_a_folder_without_routes_is_one_line(tmp_path, capsys):
    assert main(["failures", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0]


def write_trace(folder, name, spans):
    """A trace at 10 Hz: each span (seconds, speed, light, held by, expert's target speed)."""
    rows, t = [], 0.0
    for seconds, speed, light, held, expert in spans:
        for _ in range(round(seconds * 10)):
            rows.append(TraceRow(time=t, speed=speed, command="LANEFOLLOW", light=light, light_distance=8.0, target_speed=0.0,
                                 brake_probability=0.9 if held == "brake" else 0.1, creeping=False, emergency_brake=False,
                                 red_light_stop=held == "layer", expert_target_speed=expert, throttle=0.0, steer=0.0,
                                 brake=1.0, collision=False, red_light=False, outside_lanes=False))  # fmt: skip
            t += 0.1
    (folder / "traces").mkdir(exist_ok=True)
    with (folder / "traces" / f"{name}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, [field.name for field in fields(TraceRow)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)


def test_long_stops_say_who_held_the_car_and_what_the_expert_did(tmp_path, capsys):
    write_run(tmp_path, [("v000_dense_t4000", 40.0, "timeout", {})])
    write_trace(tmp_path, "v000_dense_t4000", [(5, 6.0, "GREEN", "", 6.0), (30, 0.0, "RED", "layer", 0.0), (3, 5.0, "GREEN", "", 6.0),
                                                (40, 0.0, "GREEN", "brake", 5.0), (2, 4.0, "GREEN", "", 5.0),
                                                (10, 0.0, "RED", "brake", 0.0)])  # fmt: skip
    stops = read_stops(tmp_path, min_s=20.0)
    assert [(s.holder, round(s.duration), s.red, s.expert_goes) for s in stops] == [("red-light stop", 30, 1.0, 0.0),
                                                                                    ("policy brake", 40, 0.0, 1.0)]  # fmt: skip
    assert main(["failures", str(tmp_path), "stop_s=20"]) == 0
    rows = {line.split(" | ")[0].strip("| *"): line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert [c.strip(" |") for c in rows["policy brake"][1:]] == ["1", "1", "40", "40", "0"]
    assert [c.strip(" |") for c in rows["red-light stop"][1:]] == ["1", "1", "30", "0", "30"]
    assert [c.strip(" |") for c in rows["all"][1:4]] == ["2", "1", "70"]
    assert main(["failures", str(tmp_path), "stop_s=0"]) == 2
    assert "stop_s" in capsys.readouterr().err
