"""`drivestack run` end to end at a tiny size: every stage runs, writes what the report needs, and a re-run skips."""

from dataclasses import replace

import pytest
from drivestack.common.config import ConfigError
from drivestack.perception.classes import ClassMap
from drivestack.perception.config import PerceptionConfig
from drivestack.perception.data.dataset import DataConfig
from drivestack.planning.dagger import DaggerConfig
from drivestack.planning.deploy.bench import BenchConfig
from drivestack.planning.deploy.export import ExportConfig
from drivestack.planning.evaluation.drive import DriveConfig
from drivestack.planning.pipeline import PipelineConfig, run_pipeline, stage_configs
from drivestack.planning.policy.model import PolicyConfig
from drivestack.planning.policy.train import PolicyTrainConfig, training_set
from drivestack.sim.record.recorder import CollectConfig
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

from tests.perception_helpers import HEIGHT, WIDTH, tiny_model_config, write_tiny_suite


def tiny_pipeline(out, suite) -> PipelineConfig:
    sim = SimConfig(cameras=[CameraConfig("front", WIDTH, HEIGHT)], town=TownConfig(grid=3), blocked_s=5.0,
                    traffic=TrafficConfig(vehicles=4, pedestrians=4), route_length=120.0)
    base = PerceptionConfig()
    train = replace(base.train, epochs=1, batch_size=4, warmup_steps=1, workers=0, ema=False, channels_last=False, log_every=1)
    perception = PerceptionConfig(data=DataConfig(train_towns=[0, 1], val_towns=[2], test_towns=[3], cache=False),
                                  classes=ClassMap(), model=tiny_model_config(), train=train,
                                  val=replace(base.val, latency_runs=2, render=1))
    policy = PolicyTrainConfig(model=PolicyConfig(input_size=(HEIGHT // 4, WIDTH // 4), channels=[8, 16], hidden=32), train=train,
                               side_cameras=["left_shift"])  # fmt: skip
    recorded = replace(sim, cameras=[*sim.cameras, CameraConfig("left_shift", WIDTH, HEIGHT, y=-3.0)])
    return PipelineConfig(
        out=str(out), policy_gt_epochs=1, drive_videos=1, dagger_rounds=2, dagger_epochs=1, soup_rounds=2, package_out=str(out / "models"),
        dagger=DaggerConfig(routes_per_town=1, max_frames=30, save_every=5, workers=1, progress=False),
        collect=CollectConfig(town_seeds=[0, 1, 2, 3], routes_per_town=1, max_frames=30, save_every=5, workers=1,
                              progress=False, sim=recorded),
        perception=perception, policy=policy,
        export=ExportConfig(precisions=["fp32", "int8"], parity_frames=2, calibration_frames=4),
        drive=DriveConfig(suite=str(suite), sim=sim), bench=BenchConfig(frames=3, warmup=1),
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    suite = write_tiny_suite(tmp / "suite.yaml")
    config = tiny_pipeline(tmp / "run", suite)
    assert run_pipeline(config) == 0
    return config, tmp / "run"


def test_every_artefact_of_the_report_exists(pipeline):
    _, out = pipeline
    for path in ["dataset/manifest.json", "perception/last.pt", "perception/val/metrics.json", "policy_gt/last.pt",
                 "policy/last.pt", "dagger1/manifest.json", "policy_dagger1/last.pt", "dagger2/manifest.json", "policy_dagger2/last.pt",
                 "policy_soup/last.pt", "export/fused_fp32.onnx", "export/fused_int8.onnx", "export/perception_fp32.onnx",
                 "export/policy_fp32.onnx", "drive/summary.json", "drive/videos/tiny_route.mp4", "drive/videos/tiny_route.png",
                 "drive_expert/summary.json", "bench/bench.json", "bench/latency.png", "curves.png", "report.md"]:
        assert (out / path).is_file(), path
    report = (out / "report.md").read_text()
    for section in ("## Dataset", "## Training curves", "## Perception", "## DAgger rounds", "## Driving", "## Latency per stage", "## Drive videos"):
        assert section in report
    assert "The exported policy is the mean of the weights of 2 rounds' policies" in report


def test_the_final_model_is_packaged_with_its_metrics(pipeline):
    import json

    from drivestack.common.checkpoint import load_checkpoint
    from drivestack.planning.deploy.onnx_io import read_metadata

    _, out = pipeline
    shipped = load_checkpoint(out / "models" / "driving.pt")
    assert shipped["source"] == str(out / "policy_soup" / "last.pt")
    assert read_metadata(out / "models" / "driving_fused_int8.onnx")["checkpoint"] == shipped["source"]
    metrics = json.loads((out / "models" / "metrics.json").read_text())
    assert sorted(metrics) == ["drive/summary.json", "drive_expert/summary.json", "val/metrics.json"]
    assert metrics["drive/summary.json"]["summary"]["routes"] == 1


def test_a_separate_perception_recording_feeds_perception_only(tmp_path):
    config = tiny_pipeline(tmp_path / "run", tmp_path / "suite.yaml")
    policy_data = replace(config.policy.data, train_towns=[0], val_towns=[1], test_towns=[2])
    config = replace(config, perception_collect=replace(config.collect, town_seeds=[0, 1, 2, 3, 4]),
                     policy=replace(config.policy, data=policy_data), dagger_rounds=2, dagger_lr=5e-4)
    stages = stage_configs(config)
    assert stages["perception_collect"].out == stages["perception"].data.root == str(tmp_path / "run" / "perception_dataset")
    assert stages["collect"].out == stages["policy"].data.root == stages["policy_gt"].data.root == str(tmp_path / "run" / "dataset")
    assert stages["policy"].data.train_towns == [0] and stages["perception"].data.train_towns == [0, 1]
    assert stages["dagger2"].town_seeds == [0]  # the learner drives the policy's training towns
    assert [stages[f"policy_dagger{i}"].train.lr for i in (1, 2)] == [5e-4, 5e-4]
    assert stages["policy"].train.lr == config.policy.train.lr


def test_soup_rounds_average_the_last_rounds_and_are_bounded_by_the_rounds(tmp_path):
    config = replace(tiny_pipeline(tmp_path / "run", tmp_path / "suite.yaml"), dagger_rounds=3, soup_rounds=2)
    stages = stage_configs(config)
    assert stages["soup"].checkpoints == [str(tmp_path / "run" / f"policy_dagger{i}" / "last.pt") for i in (2, 3)]
    assert stages["export"].checkpoint == stages["drive"].model == stages["soup"].out
    assert "soup" not in stage_configs(replace(config, soup_rounds=1))
    for rounds in (0, 4):
        with pytest.raises(ConfigError, match=f"soup_rounds {rounds} must be between 1 and dagger_rounds \\(3\\)"):
            stage_configs(replace(config, soup_rounds=rounds))


def test_a_run_with_a_perception_recording_trains_perception_on_it(tmp_path, capsys):
    from drivestack.common.checkpoint import load_checkpoint
    from drivestack.sim.record.dataset_io import load_manifest

    suite = write_tiny_suite(tmp_path / "suite.yaml")
    config = tiny_pipeline(tmp_path / "run", suite)
    recording = replace(config.collect, town_seeds=[0, 1, 2, 3, 7], sim=replace(config.collect.sim, cameras=config.collect.sim.cameras[:1]))
    perception = replace(config.perception, data=replace(config.perception.data, train_towns=[0, 7]))
    config = replace(config, perception_collect=recording, perception=perception, policy=replace(config.policy, data=config.perception.data),
                     dagger_rounds=0, soup_rounds=1, drive_videos=0, package_out="", export=replace(config.export, precisions=["fp32"]))  # fmt: skip
    assert run_pipeline(config) == 0
    assert "== collect for perception\n" in capsys.readouterr().out
    out = tmp_path / "run"
    assert sorted({e.town_seed for e in load_manifest(out / "perception_dataset").episodes}) == [0, 1, 2, 3, 7]
    assert load_checkpoint(out / "perception" / "last.pt")["config"]["data"]["root"] == str(out / "perception_dataset")
    assert load_checkpoint(out / "policy" / "last.pt")["config"]["data"]["root"] == str(out / "dataset")
    report = (out / "report.md").read_text()
    assert "## Perception dataset" in report and f"`{out / 'perception_dataset'}`: 5 episodes" in report


def test_a_rerun_skips_every_finished_stage(pipeline, capsys):
    config, out = pipeline
    before = (out / "policy" / "last.pt").stat().st_mtime_ns
    assert run_pipeline(config) == 0
    printed = capsys.readouterr().out
    for stage in ("train perception", "evaluate perception", "train policy on ground truth", "train policy on perception",
                  "DAgger round 1: train policy", "DAgger round 2: train policy", "average the last 2 rounds' weights",
                  "export onnx", "bench"):
        assert f"== {stage}: done already, skipped" in printed
    assert (out / "policy" / "last.pt").stat().st_mtime_ns == before


def test_the_dagger_round_drives_the_policy_and_the_export_ships_its_result(pipeline):
    from drivestack.common.checkpoint import load_checkpoint
    from drivestack.planning.deploy.onnx_io import read_metadata
    from drivestack.sim.record.dataset_io import load_manifest

    _, out = pipeline
    recorded = load_manifest(out / "dagger1")
    assert recorded.config["model"] == str(out / "policy" / "last.pt") and recorded.config["town_seeds"] == [0, 1]
    assert len(recorded.episodes) == 2
    assert [c.name for c in recorded.format.cameras] == ["front"]  # the side camera is left out while the policy drives
    fine_tuned = load_checkpoint(out / "policy_dagger1" / "last.pt")["config"]
    assert fine_tuned["init"] == str(out / "policy" / "last.pt") and fine_tuned["extra_roots"] == [str(out / "dagger1")]
    second = load_checkpoint(out / "policy_dagger2" / "last.pt")["config"]
    assert second["init"] == str(out / "policy_dagger1" / "last.pt")
    assert second["extra_roots"] == [str(out / "dagger1"), str(out / "dagger2")]
    soup = load_checkpoint(out / "policy_soup" / "last.pt")
    assert soup["soup"] == [str(out / f"policy_dagger{i}" / "last.pt") for i in (1, 2)]
    assert read_metadata(out / "export" / "fused_fp32.onnx")["checkpoint"] == str(out / "policy_soup" / "last.pt")


def test_the_policy_stages_train_on_the_side_views_the_collect_stage_recorded(pipeline):
    from drivestack.common.checkpoint import load_checkpoint
    from drivestack.sim.record.dataset_io import load_manifest

    config, out = pipeline
    assert [c.name for c in load_manifest(out / "dataset").format.cameras] == ["front", "left_shift"]
    for stage in ("policy_gt", "policy", "policy_dagger1"):
        assert load_checkpoint(out / stage / "last.pt")["config"]["side_cameras"] == ["left_shift"], stage
    union = training_set(stage_configs(config)["policy_dagger1"], None)  # what the last fine-tune trained on
    assert [(p.root.name, p.camera, p.shift is not None) for p in union.datasets] == [
        ("dataset", "front", False), ("dagger1", "front", False), ("dataset", "left_shift", True)]


def test_an_export_older_than_its_checkpoint_is_not_done(pipeline):
    import os

    from drivestack.planning.pipeline import _exported

    config, out = pipeline
    export = stage_configs(config)["export"]
    assert _exported(export)
    soup = out / "policy_soup" / "last.pt"
    before = soup.stat()
    try:
        os.utime(soup, (before.st_atime, before.st_mtime + 3600))  # remade after the export (e.g. after another round)
        assert not _exported(export)
    finally:
        os.utime(soup, ns=(before.st_atime_ns, before.st_mtime_ns))
