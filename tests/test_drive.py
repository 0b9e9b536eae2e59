"""`drivestack drive` resumes a results folder only with the driver that started it."""

import os
from dataclasses import replace
from pathlib import Path

import pytest
from drivestack.common.config import ConfigError
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.agents.safety import SafetyConfig
from drivestack.planning.evaluation.drive import DriveConfig, check_resume, drive, drive_suite, policy_identity
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

from tests.perception_helpers import write_tiny_suite


@pytest.fixture
def tiny_drive(tmp_path) -> DriveConfig:
    suite = write_tiny_suite(tmp_path / "suite.yaml")
    sim = SimConfig(cameras=[CameraConfig("front", 64, 32)], town=TownConfig(grid=3), traffic=TrafficConfig(vehicles=2, pedestrians=2))
    return DriveConfig(agent="expert", suite=str(suite), out=str(tmp_path / "drive"), sim=sim)


def test_a_rerun_with_other_simulator_settings_is_refused(tiny_drive, tmp_path):
    assert drive_suite(tiny_drive) == 0
    assert (tmp_path / "drive" / "summary.json").is_file() and (tmp_path / "drive" / "driver.json").is_file()
    assert drive_suite(replace(tiny_drive, videos=True, routes=["tiny_route"])) == 0  # how it is shown is not who drives
    busier = replace(tiny_drive, sim=replace(tiny_drive.sim, traffic=TrafficConfig(vehicles=9, pedestrians=2)))
    with pytest.raises(ConfigError, match="its routes were driven with another sim"):
        drive_suite(busier)


def test_a_retrained_model_under_the_same_file_name_is_another_driver(tmp_path):
    model = tmp_path / "fused_fp32.onnx"
    model.write_bytes(b"round 1")
    identity = lambda: policy_identity("onnx", model, None, "front", CreepConfig(), SafetyConfig())  # noqa: E731
    out = tmp_path / "drive"
    check_resume(out, identity())
    (out / "routes").mkdir()
    (out / "routes" / "r0.json").write_text('{"name": "r0", "status": "finished"}')
    check_resume(out, identity())  # the same model resumes
    model.write_bytes(b"round 2")
    with pytest.raises(ConfigError, match="another model_sha256"):
        check_resume(out, identity())


def test_a_folder_with_no_finished_route_takes_the_new_driver(tmp_path):
    """A start that failed (a model that did not load, no CARLA server) pins nothing."""
    out = tmp_path / "drive"
    check_resume(out, {"agent": "expert", "sim": {"backend": "carla"}})
    (out / "routes").mkdir()
    (out / "routes" / "r0.json").write_text('{"name": "r0", "status": "started"}')
    check_resume(out, {"agent": "expert", "sim": {"backend": "embedded"}})
    assert '"embedded"' in (out / "driver.json").read_text()


class ExpertKilledOnce(ExpertAgent):
    """The expert, whose process is killed (no Python clean-up) at step 30 of the first route to get there."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def setup(self, sim_config: SimConfig) -> None:
        super().setup(sim_config)
        self.steps = 0

    def run_step(self, obs):
        self.steps += 1
        if self.steps == 30 and not self.marker.exists():
            self.marker.touch()
            os._exit(9)
        return super().run_step(obs)


def test_a_worker_killed_mid_route_is_retried_and_each_route_driven_once(tmp_path, tiny_drive):
    suite = tmp_path / "three.yaml"
    suite.write_text("name: three\nroutes:\n" + "".join(f"  - {{name: {n}, town: 2000, seed: {i}, length: 40.0}}\n"
                                                         for i, n in enumerate(["first", "second", "third"])))  # fmt: skip
    result = drive(ExpertKilledOnce(tmp_path / "killed"), suite, sim=tiny_drive.sim, out=tmp_path / "ray", workers=2)
    assert (tmp_path / "killed").exists(), "the worker should have been killed once"
    assert [r.name for r in result.routes] == ["first", "second", "third"] and result.summary.routes == 3
    assert all(r.completion == 100.0 for r in result.routes)
    in_process = drive(ExpertAgent(), suite, sim=tiny_drive.sim, out=tmp_path / "one")
    assert [r.to_dict() for r in result.routes] == [r.to_dict() for r in in_process.routes]  # the retry drove it anew


def test_ctrl_c_of_a_drive_on_ray_keeps_the_finished_routes_and_resumes(tmp_path):
    """`kill <pid>` of `drivestack drive workers=2` exits 130 with no Ray process left; the same command
    then drives only what was not finished."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from tests.test_recorder import _session

    suite = tmp_path / "six.yaml"
    suite.write_text("name: six\nroutes:\n" + "".join(f"  - {{name: r{i}, town: 2000, seed: {i}, length: 60.0}}\n" for i in range(6)))
    out = tmp_path / "drive"
    args = [sys.executable, "-m", "drivestack.cli", "drive", "agent=expert", f"suite={suite}", f"out={out}", "workers=2",
            "sim.town.grid=3", "sim.cameras=[{name: front, width: 64, height: 32}]"]  # fmt: skip
    log = tmp_path / "log.txt"
    with open(log, "w") as sink:
        process = subprocess.Popen(args, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)
    finished = lambda: [p for p in (out / "routes").glob("*.json") if json.loads(p.read_text())["status"] == "finished"]  # noqa: E731
    deadline = time.time() + 120
    while (not (out / "routes").is_dir() or not finished()) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130, log.read_text()
    deadline = time.time() + 15
    while _session(process.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _session(process.pid), "Ray processes outlived the job"
    kept = {p.name: p.stat().st_mtime_ns for p in finished()}
    assert 0 < len(kept) < 6
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0
    assert len(finished()) == 6 and all(p.stat().st_mtime_ns == kept[p.name] for p in finished() if p.name in kept)
