"""Shared by the tests: a tiny dataset recorded with the real recorder (once per test process), tiny model
configs, a one-route suite."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from drivestack.perception.classes import ClassMap
from drivestack.perception.config import PerceptionConfig
from drivestack.perception.data.dataset import DataConfig
from drivestack.perception.models.multitask import ModelConfig
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.sim.record.recorder import CollectConfig, collect
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

WIDTH, HEIGHT = 128, 64
TOWNS = [0, 1, 2]


def write_tiny_suite(path: Path) -> Path:
    """A route suite of one 40 m route, ``tiny_route``, in town 2000."""
    path.write_text("name: tiny\nroutes:\n  - {name: tiny_route, town: 2000, seed: 1, length: 40.0}\n")
    return path


@functools.lru_cache(maxsize=1)
def recorded_dataset() -> Path:
    """Three 3x3 towns, one route each, 6 saved 128x64 frames per route (embedded simulator + expert)."""
    out = Path(tempfile.mkdtemp(prefix="perception_ds_"))
    atexit.register(shutil.rmtree, out, True)
    sim = SimConfig(cameras=[CameraConfig("front", WIDTH, HEIGHT)], town=TownConfig(grid=3),
                    traffic=TrafficConfig(vehicles=8, pedestrians=8), route_length=150.0)  # fmt: skip
    config = CollectConfig(out=str(out), town_seeds=TOWNS, routes_per_town=1, max_frames=30, save_every=5, workers=1,
                           progress=False, sim=sim)  # fmt: skip
    result = collect(config, ExpertAgent)
    assert not result.incomplete, result.failed
    return out


def tiny_model_config() -> ModelConfig:
    """A small, fast network for tests."""
    return ModelConfig(backbone="mobilenet_v3_small", width_mult=0.5, fpn_channels=16, seg_channels=8, det_channels=16)


def tiny_config(root: Path, **train) -> PerceptionConfig:
    config = PerceptionConfig(data=DataConfig(root=str(root), train_towns=[0, 1], val_towns=[2], test_towns=[],
                                              cache=False), classes=ClassMap(), model=tiny_model_config())  # fmt: skip
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


@functools.lru_cache(maxsize=1)
def trained_driving_runs() -> Path:
    """A random tiny perception checkpoint, then one epoch of each policy stage (gt/, pred/) on the recorded data."""
    from dataclasses import replace

    from drivestack.common.checkpoint import model_spec, save_checkpoint, to_plain
    from drivestack.perception.models.multitask import MultiTaskNet
    from drivestack.planning.policy.model import PolicyConfig
    from drivestack.planning.policy.train import PolicyTrainConfig, train_policy

    root = recorded_dataset()
    tmp = Path(tempfile.mkdtemp(prefix="policy_runs_"))
    atexit.register(shutil.rmtree, tmp, True)
    perception = MultiTaskNet(tiny_model_config())
    save_checkpoint(tmp / "perception.pt", {"model": model_spec("perception", tiny_model_config()),
                                            "state_dict": perception.state_dict(),
                                            "meta": {"image_size": [HEIGHT, WIDTH], "seg_classes": to_plain(ClassMap().seg),
                                                     "det_classes": to_plain(ClassMap().det)}})  # fmt: skip
    base = tiny_config(root)
    policy = PolicyConfig(input_size=(HEIGHT // 4, WIDTH // 4), channels=[8, 16], hidden=32)
    config = PolicyTrainConfig(perception=str(tmp / "perception.pt"), data=base.data, model=policy, cache_dir=str(tmp / "inputs"),
                               train=replace(base.train, out=str(tmp / "gt"), epochs=1, batch_size=4, warmup_steps=1,
                                             ema=False, workers=0, channels_last=False))  # fmt: skip
    assert train_policy(replace(config, inputs="ground_truth")) == 0
    seen = replace(config, inputs="perception", init=str(tmp / "gt" / "last.pt"), train=replace(config.train, out=str(tmp / "pred")))
    assert train_policy(seen) == 0
    return tmp
