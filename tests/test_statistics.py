"""Confidence intervals of suite results and the paired comparison of two result folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from drivestack.cli import main
from drivestack.common.errors import InputError
from drivestack.planning.evaluation.stats import compare, mean_ci, ratio_ci


def test_the_interval_holds_the_mean_narrows_with_more_routes_and_repeats():
    rng = np.random.default_rng(1)
    few, many = rng.choice([0.0, 60.0, 100.0], 20), rng.choice([0.0, 60.0, 100.0], 400)
    for scores in (few, many):
        low, high = mean_ci(scores)
        assert low < scores.mean() < high
    assert np.diff(mean_ci(many)) < 0.6 * np.diff(mean_ci(few))
    assert mean_ci(few) == mean_ci(few)
    assert mean_ci([100.0] * 10) == [100.0, 100.0]


def test_infractions_per_km_is_a_ratio_of_sums():
    low, high = ratio_ci([0, 2, 0, 1], [0.25, 0.25, 0.5, 1.0])
    assert low <= 3 / 2.0 <= high and low >= 0


def _results(folder, scores: dict[str, tuple[float, str, dict]]):
    (folder / "routes").mkdir(parents=True)
    for n, (s, o, i) in scores.items():
        record = {"status": "finished", "name": n, "driving_score": s, "outcome": o, "infractions": i}
        (folder / "routes" / f"{n}.json").write_text(json.dumps(record))
    (folder / "routes" / "unfinished.json").write_text(json.dumps({"status": "started", "name": "unfinished"}))
    return folder


def test_compare_names_the_routes_that_flipped_and_why(tmp_path, capsys):
    same = {f"r{i}": (100.0, "completed", {}) for i in range(8)}
    a = _results(tmp_path / "a", same | {"r8": (45.0, "timeout", {}), "r9": (100.0, "completed", {}), "old": (1.0, "blocked", {})})
    b = _results(tmp_path / "b", same | {"r8": (100.0, "completed", {}), "r9": (60.0, "completed", {"collision_vehicle": 1})})
    comparison = compare(a, b)
    assert [r.name for r in comparison.flipped()] == ["r8", "r9"]
    assert comparison.flipped()[0].why() == "timeout -> completed"
    assert comparison.flipped()[1].why() == "collision_vehicle 0 -> 1"
    assert comparison.mean_difference == pytest.approx((55.0 - 40.0) / 10)
    low, high = comparison.ci
    assert low < comparison.mean_difference < high and comparison.only_in_one == ["old"]
    assert main(["compare", str(a), str(b), f"out={tmp_path / 'c.json'}"]) == 0
    printed = capsys.readouterr().out
    assert "mean difference B - A: +1.5 (paired bootstrap 95 % CI" in printed and "r8" in printed
    assert json.loads((tmp_path / "c.json").read_text())["mean_difference"] == pytest.approx(1.5)


def test_folders_without_common_routes_are_refused(tmp_path):
    a = _results(tmp_path / "a", {"x": (1.0, "completed", {})})
    b = _results(tmp_path / "b", {"y": (1.0, "completed", {})})
    with pytest.raises(InputError, match="share no route"):
        compare(a, b)
    assert main(["compare", str(a), str(tmp_path / "nothing")]) == 2
