"""Cached perception inputs for policy training: equal to running the network, reused, rebuilt when stale."""

from pathlib import Path

import pytest
import torch
from drivestack.common.checkpoint import save_checkpoint, to_plain
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.augment import Augment, AugmentConfig
from drivestack.perception.data.dataset import DrivingDataset
from drivestack.planning.policy.driving_model import DrivingModel, DrivingModelConfig
from drivestack.planning.policy.input_cache import build_input_cache
from drivestack.planning.policy.model import PolicyConfig

from tests.perception_helpers import HEIGHT, WIDTH, recorded_dataset, tiny_model_config


def driving_model(seed: int) -> DrivingModel:
    torch.manual_seed(seed)
    config = DrivingModelConfig(perception=tiny_model_config(), policy=PolicyConfig(input_size=(HEIGHT // 4, WIDTH // 4)))
    return DrivingModel(config)


def weights_file(model: DrivingModel, path: Path) -> Path:
    save_checkpoint(path, {"state_dict": model.perception.state_dict()})
    return path


class CountingPerceive:
    def __init__(self, model: DrivingModel, fail_at: int = -1):
        self.model, self.calls, self.fail_at = model, 0, fail_at

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        self.calls += 1
        return self.model.perceive(images)


def augmented_dataset(seed: int = 3) -> DrivingDataset:
    return DrivingDataset(recorded_dataset(), [0, 1], ClassMap(), "front", Augment(AugmentConfig()), seed=seed)


def build(perceive, dataset: DrivingDataset, weights: Path, cache_dir: Path, views: int = 2):
    return build_input_cache(perceive, dataset, weights, to_plain(AugmentConfig()), views, cache_dir, batch_size=4, workers=0)


def test_each_view_holds_the_network_outputs_and_labels_of_that_epochs_augmentation(tmp_path):
    model = driving_model(0)
    dataset = augmented_dataset()
    cache = build(model.perceive, dataset, weights_file(model, tmp_path / "p.pt"), tmp_path / "cache")
    assert cache.flipped.any() and not cache.flipped.all()  # both kinds of view are there
    for view in (0, 1):
        cache.set_epoch(view + 2)  # epoch e reads view e mod 2
        dataset.set_epoch(view)
        for index in range(len(dataset)):
            sample = dataset[index]
            seg, det = model.perceive(sample["image"][None])
            expected = torch.cat([seg, det], dim=1)[0]
            cached = cache[index]
            assert cached["inputs"].dtype == torch.uint8 and cached["inputs"].shape == expected.shape
            assert (cached["inputs"].float() / 255 - expected).abs().max() <= 0.5 / 255 + 1e-5
            assert bool(cache.flipped[view, index]) == sample["flipped"]
            for key in ("waypoints", "command", "control"):
                assert torch.equal(cached["policy"][key], sample["policy"][key]), key


def test_a_complete_cache_is_reused_and_other_weights_get_their_own(tmp_path):
    model = driving_model(0)
    weights = weights_file(model, tmp_path / "p.pt")
    first = CountingPerceive(model)
    cache = build(first, augmented_dataset(), weights, tmp_path / "cache")
    assert first.calls > 0
    again = CountingPerceive(model)
    assert build(again, augmented_dataset(), weights, tmp_path / "cache").folder == cache.folder and again.calls == 0

    other = driving_model(1)
    retrained = CountingPerceive(other)
    rebuilt = build(retrained, augmented_dataset(), weights_file(other, tmp_path / "p.pt"), tmp_path / "cache")
    assert rebuilt.folder != cache.folder and retrained.calls == first.calls
    assert build(CountingPerceive(model), augmented_dataset(seed=4), weights, tmp_path / "cache").folder != cache.folder


def test_an_interrupted_build_keeps_finished_views_and_resumes_at_the_missing_one(tmp_path):
    model = driving_model(0)
    weights = weights_file(model, tmp_path / "p.pt")
    batches_per_view = -(-len(augmented_dataset()) // 4)
    with pytest.raises(KeyboardInterrupt):
        build(CountingPerceive(model, fail_at=batches_per_view + 1), augmented_dataset(), weights, tmp_path / "cache")
    (folder,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["view0.npy", "view0_flipped.npy"]  # no half-written view 1
    resumed = CountingPerceive(model)
    cache = build(resumed, augmented_dataset(), weights, tmp_path / "cache")
    assert resumed.calls == batches_per_view and cache.folder == folder
