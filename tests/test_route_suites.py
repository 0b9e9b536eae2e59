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


def _towns_named_in(data) -> set[int]:
    """Every town seed a config names (keys ending in ``towns`` or ``town_seeds``, at any depth)."""
    found: set[int] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if (key.endswith("towns") or key == "town_seeds") and isinstance(value, list):
                found |= {v for v in value if isinstance(v, int)}
            else:
                found |= _towns_named_in(value)
    return found


def test_the_generated_suites_are_large_and_use_towns_nothing_else_uses():
    import yaml

    val, test = load_suite(ROUTES / "generated_val.yaml"), load_suite(ROUTES / "generated_test.yaml")
    assert len(val.routes) >= 100 and len(test.routes) >= 100
    val_towns, test_towns = {r.town for r in val.routes}, {r.town for r in test.routes}
    others = set().union(*(_towns_named_in(yaml.safe_load(p.read_text())) for p in ROUTES.parent.glob("*.yaml")))
    others |= {r.town for name in ("heldout.yaml", "val.yaml") for r in load_suite(ROUTES / name).routes}
    assert 1000 in others and 25 in others and 2000 in others  # the check sees the expert's, perception's and heldout's towns
    assert not val_towns & test_towns and not (val_towns | test_towns) & others
    kinds = {r.name.split("_")[1] for r in test.routes}
    assert kinds == {"mixed", "dense", "pedestrians", "lights", "denselong", "crowdlong"}
    assert max(r.length for r in test.routes) == 600.0 and max(r.traffic.get("vehicles", 0) for r in test.routes) == 60


def test_a_generated_suite_is_the_same_on_every_load_and_changes_with_its_seed(tmp_path):
    assert load_suite(ROUTES / "generated_test.yaml") == load_suite(ROUTES / "generated_test.yaml")
    reseeded = tmp_path / "reseeded.yaml"
    reseeded.write_text((ROUTES / "generated_test.yaml").read_text().replace("seed: 5000", "seed: 5001"))
    assert [r.seed for r in load_suite(reseeded).routes] != [r.seed for r in load_suite(ROUTES / "generated_test.yaml").routes]


def test_every_route_of_the_generated_suites_can_be_built():
    """The embedded simulator lays out each route as ``reset`` does (generated-val route v003 once ended a chunk
    of the route on an empty lane piece and crashed the whole drive)."""
    from dataclasses import replace

    import numpy as np
    from drivestack.sim.embedded.backend import get_town
    from drivestack.sim.embedded.route import random_route

    for name in ("generated_val.yaml", "generated_test.yaml"):
        for route in load_suite(ROUTES / name).routes:
            config = route_sim_config(SimConfig(), route)
            town = get_town(replace(config.town, seed=route.town), config.traffic)
            rng = np.random.default_rng(np.random.SeedSequence([route.seed, route.town]).spawn(3)[0])  # the route's stream in reset
            laid = random_route(town, rng, route.length)
            assert len(laid.points) >= 0.9 * route.length and np.isfinite(laid.points).all(), route.name  # points 1 m apart
