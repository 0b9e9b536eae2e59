"""DAgger: the learned agent drives, the expert labels; beta mixing, resume, learner check, training on the union."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from drivestack.cli import execute
from drivestack.common.checkpoint import model_spec, save_checkpoint
from drivestack.common.config import load_config, read_yaml, to_dict
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.dataset import DrivingDataset
from drivestack.planning.dagger import DaggerConfig, dagger, make_learner
from drivestack.planning.policy.driving_model import DrivingModelConfig, build_policy_training
from drivestack.planning.policy.model import PolicyConfig
from drivestack.sim.interface import RouteSpec
from drivestack.sim.record.dataset_io import (
    DatasetError,
    load_manifest,
    measurement_line,
    read_measurements,
    validate_dataset,
)
from drivestack.sim.record.recorder import ExpertBlocks, measurement_record, plan_episodes
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

from tests.perception_helpers import HEIGHT, WIDTH, recorded_dataset, tiny_config, tiny_model_config
from tests.test_recorder import snapshot

ROOT = Path(__file__).resolve().parents[1]
POLICY = PolicyConfig(input_size=(HEIGHT // 4, WIDTH // 4), channels=[8, 16], hidden=32)

run_tool = partial(execute, "dagger")  # the verb as the command line runs it


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """An untrained tiny driving model (driving.pt) and its perception part (perception.pt)."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    config = DrivingModelConfig(perception=tiny_model_config(), policy=POLICY)
    model = build_policy_training(config)
    save_checkpoint(folder / "driving.pt", {"model": model_spec("driving", config), "state_dict": model.state_dict(),
                                            "meta": {"image_size": [HEIGHT, WIDTH]}})  # fmt: skip
    perception = model_spec("perception", config.perception)
    save_checkpoint(folder / "perception.pt", {"model": perception, "state_dict": model.model.perception.state_dict()})
    return folder


def dagger_config(out: Path, models: Path, **changes) -> DaggerConfig:
    sim = SimConfig(cameras=[CameraConfig("front", WIDTH, HEIGHT)], town=TownConfig(grid=3),
                    traffic=TrafficConfig(vehicles=4, pedestrians=4), route_length=150.0)  # fmt: skip
    base = dict(out=str(out), model=str(models / "driving.pt"), town_seeds=[0], routes_per_town=1, max_frames=20,
                workers=1, progress=False, threads=0, sim=sim)  # fmt: skip
    return DaggerConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, models) -> DaggerConfig:
    """One uninterrupted DAgger episode (20 frames, learner only)."""
    config = dagger_config(tmp_path_factory.mktemp("dagger") / "ds", models)
    assert run_tool(config) == 0
    return config


def records(config: DaggerConfig) -> list[dict]:
    return [r for p in sorted(Path(config.out).glob("*/measurements.jsonl")) for r in read_measurements(p)]


def test_learner_drives_and_expert_labels_every_frame(reference, models):
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    assert validate_dataset(reference.out) == []
    assert load_manifest(reference.out).config["model"] == reference.model
    stored = records(reference)
    assert len(DrivingDataset(reference.out, [0], ClassMap())) == len(stored) == 20
    # Drive again by hand: every stored record is the expert's label and the learner's applied control.
    entry = plan_episodes(reference)[0]
    expert, agent = ExpertAgent(), make_learner(reference)  # the learner DAgger drives, set up for reference.sim
    expert.setup(reference.sim)
    with EmbeddedSimulator(reference.sim) as sim:
        obs = sim.reset(entry.route_seed, RouteSpec(town=entry.town_seed, length=reference.route_length, name=entry.name))
        for frame, record in enumerate(stored):
            label, control = expert.run_step(obs), agent.run_step(obs)
            assert json.loads(measurement_line(measurement_record(frame, obs, control, label, expert.target_speed))) == record
            obs = sim.step(control)
    assert any(r["control"] != r["expert_control"] for r in stored), "the learner should differ from the expert"


def test_beta_one_applies_the_expert(tmp_path, models):
    config = dagger_config(tmp_path / "ds", models, beta=1.0)
    assert run_tool(config) == 0
    assert all(r["control"] == r["expert_control"] for r in records(config))


def test_beta_is_drawn_per_second_and_seeded():
    def sources(seed: int) -> np.ndarray:
        blocks = ExpertBlocks(beta=0.5, dt=0.05, seed=seed)
        return np.array([blocks.expert_drives() for _ in range(400)])

    expert = sources(7)
    blocks = expert.reshape(20, 20)  # 20 steps of 0.05 s per block
    assert (blocks == blocks[:, :1]).all() and 0 < blocks[:, 0].sum() < 20
    assert np.array_equal(expert, sources(7)) and not np.array_equal(expert, sources(8))


def test_resume_after_deleting_the_last_frames_gives_the_same_records(tmp_path, reference):
    config = replace(reference, out=str(tmp_path / "ds"))
    shutil.copytree(reference.out, config.out)
    episode = Path(config.out) / plan_episodes(config)[0].name
    (episode / "episode.json").unlink()
    jsonl = episode / "measurements.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:12]))
    for path in episode.glob("rgb/front_0000[12]*.jpg"):
        path.unlink()
    assert run_tool(config) == 0
    assert snapshot(Path(config.out)) == snapshot(Path(reference.out))


def test_resuming_with_another_model_is_refused(tmp_path, reference, capsys):
    other = tmp_path / "other.pt"
    shutil.copy(reference.model, other)
    config = replace(reference, model=str(other))
    with pytest.raises(DatasetError, match="recorded with the learner .*driving.pt, not .*other.pt"):
        dagger(config)
    assert run_tool(config) == 2 and "use another 'out' folder" in capsys.readouterr().err


def test_train_policy_trains_on_the_union_with_extra_roots(tmp_path, reference, models, capsys):
    from drivestack.planning.policy.train import FrameUnion, PolicyTrainConfig, train_policy, training_set

    base = tiny_config(recorded_dataset())
    config = PolicyTrainConfig(inputs="ground_truth", perception=str(models / "perception.pt"), init=str(models / "driving.pt"),
                               data=base.data, extra_roots=[reference.out], model=POLICY,
                               train=replace(base.train, out=str(tmp_path / "policy"), epochs=1, batch_size=4,
                                             warmup_steps=1, ema=False, workers=0, channels_last=False))  # fmt: skip
    main = DrivingDataset(base.data.root, base.data.train_towns, ClassMap())
    val = DrivingDataset(base.data.root, base.data.val_towns, ClassMap())
    union = training_set(config, None)
    assert isinstance(union, FrameUnion) and len(union) == len(main) + len(records(reference))
    assert union[len(main)]["index"] == len(main) and union.frames[len(main)].episode.parent == Path(reference.out)
    assert train_policy(config) == 0
    assert f"{len(union)} frames, val {len(val)}" in capsys.readouterr().out


def test_config_yaml_lists_every_key_with_its_default():
    path = ROOT / "configs" / "dagger.yaml"

    def keys(data: dict, prefix: str = "") -> set[str]:
        return {k for key, value in data.items()
                for k in (keys(value, f"{prefix}{key}.") if value and isinstance(value, dict) else {prefix + key})}  # fmt: skip

    expected = {k for k in keys(to_dict(DaggerConfig())) if not k.startswith("sim.")} | {"sim"}
    assert keys(read_yaml(path)) == expected and load_config(DaggerConfig, path) == DaggerConfig()
    assert all("#" in line for line in path.read_text().splitlines() if line.strip()), "every key needs a comment"
