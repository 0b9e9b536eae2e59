"""Drive traces: one row per step, the expert's label next to the agent's decision, CSV and plot written."""

import csv
import math

from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.evaluation.suite import SuiteRoute, drive_route
from drivestack.sim.conventions import TrafficLightState


def test_expert_trace_matches_its_own_labels_row_by_row(tmp_path, sim_config):
    """The expert agent and the trace's labelling expert see the same observations, so their target speeds agree
    on every step; the CSV holds one row per simulated step and the plot is written next to it."""
    trace = tmp_path / "traces" / "short.csv"
    result = drive_route(ExpertAgent(), sim_config, SuiteRoute(name="short", town=0, seed=3, length=60.0), trace=trace)
    with trace.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == round(result.duration_s / sim_config.dt)
    assert all(float(r["target_speed"]) == float(r["expert_target_speed"]) for r in rows)
    assert all(math.isnan(float(r["brake_probability"])) for r in rows)  # the expert has no brake output
    assert {r["light"] for r in rows} <= {s.name for s in TrafficLightState}
    assert float(rows[-1]["time"]) > float(rows[0]["time"]) and max(float(r["speed"]) for r in rows) > 2.0
    assert trace.with_suffix(".png").stat().st_size > 10_000
