"""The route suites in configs/routes: towns no dataset uses, validation and test apart, valid traffic overrides."""

from __future__ import annotations

from pathlib import Path

from drivestack.planning.evaluation.suite import load_suite, route_sim_config
from drivestack.sim.settings import SimConfig

ROUTES = Path(__file__).resolve().parents[1] / "configs" / "routes"
TRAINING_TOWNS_BELOW = 2000  # collect and dagger use towns < 1000, `drivestack expert` 1000-1009


def test_test_and_validation_suites_use_their_own_towns():
    test, val = load_suite(ROUTES / "heldout.yaml"), load_suite(ROUTES / "val.yaml")
    test_towns, val_towns = {r.town for r in test.routes}, {r.town for r in val.routes}
    assert min(test_towns | val_towns) >= TRAINING_TOWNS_BELOW
    assert not test_towns & val_towns
    assert len(test.routes) >= 20 and len(val.routes) >= 12


def test_every_route_has_a_unique_name_and_valid_traffic_overrides():
    for path in sorted(ROUTES.glob("*.yaml")):
        suite = load_suite(path)
        names = [r.name for r in suite.routes]
        assert len(names) == len(set(names)), path
        for route in suite.routes:
            route_sim_config(SimConfig(), route)  # raises on an unknown traffic key
