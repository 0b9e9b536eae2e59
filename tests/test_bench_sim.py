"""`drivestack bench-sim`: both modes run end to end on a few steps and write their JSON; the simulator's step
split is filled in. Timing itself is the benchmark's business, not a test's."""

import json

import pytest
from drivestack.cli import main
from drivestack.sim.interface import RouteSpec, VehicleControl

SMALL = ["steps=3", "warmup=1", "one_core=false", "sim.town.grid=3"]  # one_core would pin the test process


def test_bench_sim_expert_writes_simulator_rates(tmp_path, capsys):
    assert main(["bench-sim", *SMALL, f"out={tmp_path}"]) == 0
    report = json.loads((tmp_path / "bench_sim.json").read_text())
    assert report["config"]["agent"] == "expert" and report["actors"] == 30
    for mode in ("step_render", "step_render_rgb", "step_only"):
        assert set(report["results"][mode]) == {"steps_per_s", "ms_per_step", "cpu_steps_per_s"}
        assert report["results"][mode]["steps_per_s"] > 0
    assert "step + render" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_sim_policy_drives_the_closed_loop(tmp_path, capsys):
    assert main(["bench-sim", "agent=policy", *SMALL, f"out={tmp_path}"]) == 0
    results = json.loads((tmp_path / "bench_sim.json").read_text())["results"]
    assert results["fps"] > 0
    assert set(results["ms"]) == {"sim_step", "render", "inference", "postprocess_control", "loop"}
    assert all(set(v) == {"p50", "p90", "p99"} for v in results["ms"].values())
    assert "closed loop with driving_fused_int8.onnx" in capsys.readouterr().out


def test_step_reports_where_its_time_went(embedded):
    embedded.reset(seed=0, route=RouteSpec(town=0))
    embedded.step(VehicleControl())
    assert embedded.timings_ms["render"] > 0 and embedded.timings_ms["step"] > 0
    embedded.step(VehicleControl(), render=False)
    assert embedded.timings_ms["render"] == 0.0 and embedded.timings_ms["step"] > 0
