"""Perception data: town splits, readers' errors, augmentation alignment and independence, flip of the policy
targets, batches from worker processes, look."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from drivestack.perception.classes import IGNORE_INDEX, ClassMap
from drivestack.perception.data.augment import Augment, AugmentConfig
from drivestack.perception.data.dataset import DataConfig, DrivingDataset, collate, flip_policy, policy_targets
from drivestack.sim.conventions import RoadOption
from drivestack.sim.record.dataset_io import DatasetError
from perception_helpers import HEIGHT, WIDTH, recorded_dataset, tiny_config
from torch.utils.data import DataLoader

NO_AUGMENT = dict(hflip=0.0, brightness_contrast=0.0, hue_saturation=0.0, gamma=0.0, blur=0.0, noise=0.0, jpeg=0.0,
                  weather=0.0, fog=0.0, affine=0.0)  # fmt: skip


def test_splits_by_town_never_share_frames():
    with pytest.raises(ValueError, match=r"towns \[1\] are in both train_towns and val_towns"):
        DataConfig(train_towns=[0, 1], val_towns=[1, 2], test_towns=[3])
    root, classes = recorded_dataset(), ClassMap()
    train = DrivingDataset(root, [0, 1], classes)
    test = DrivingDataset(root, [2], classes)
    assert train.towns_of() == {0, 1} and test.towns_of() == {2}
    train_episodes = {f.episode for f in train.frames}
    assert train_episodes.isdisjoint({f.episode for f in test.frames})
    assert len(train) + len(test) == len(DrivingDataset(root, [0, 1, 2], classes))


def test_sample_content_and_collate():
    dataset = DrivingDataset(recorded_dataset(), [0, 1, 2], ClassMap(), cache=True)
    sample = dataset[3]
    assert sample["image"].shape == (3, HEIGHT, WIDTH) and str(sample["image"].dtype) == "torch.uint8"
    mask = sample["mask"].numpy()
    assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= set(range(10)) | {IGNORE_INDEX}
    assert set(sample["policy"]) == {"speed", "command", "target_point", "waypoints", "waypoints_valid", "control", "target_speed", "displaced"}
    assert not sample["policy"]["displaced"]
    images, targets = collate([dataset[i] for i in range(4)])
    assert images.shape == (4, 3, HEIGHT, WIDTH) and targets["mask"].shape == (4, HEIGHT, WIDTH)
    assert images.is_contiguous(memory_format=torch.channels_last) and (images[3] == sample["image"]).all()
    assert len(targets["boxes"]) == 4 and targets["policy"]["waypoints"].shape == (4, 20, 2)
    uncached = DrivingDataset(recorded_dataset(), [0, 1, 2], ClassMap(), cache=False)[3]
    assert (uncached["image"] == sample["image"]).all() and (uncached["mask"] == sample["mask"]).all()


def test_corrupt_image_error_names_the_file(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(recorded_dataset(), root)
    bad = sorted((root / "town001_route0000" / "rgb").glob("*.jpg"))[2]
    bad.write_bytes(b"not a jpeg")
    dataset = DrivingDataset(root, [1], ClassMap(), cache=False)
    with pytest.raises(DatasetError, match=str(bad)):
        for i in range(len(dataset)):
            dataset[i]
    with pytest.raises(DatasetError, match=str(bad)):
        DrivingDataset(root, [1], ClassMap(), cache=True)


def _blob_box(mask: np.ndarray, value: int) -> np.ndarray:
    ys, xs = np.nonzero(mask == value)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_augmentation_keeps_boxes_around_their_mask_blobs(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (160, 320, 3), dtype=np.uint8)
    mask = np.zeros((160, 320), np.uint8)
    mask[60:84, 120:150] = 3  # a vehicle blob
    mask[30:40, 250:256] = 5  # a traffic light blob
    boxes = np.array([[120, 60, 150, 84], [250, 30, 256, 40]], np.float32)
    config = AugmentConfig(affine=1.0, hflip=0.5, scale=(0.85, 1.15), rotate=3.0, translate=0.05, weather=0.2,
                           fog=0.2)
    out = Augment(config)(image, mask, boxes, np.array([0, 2]), seed=seed)
    assert out.image.shape == image.shape and out.mask.shape == mask.shape
    for box, label in zip(out.boxes, out.labels):
        blob = _blob_box(out.mask, {0: 3, 2: 5}[int(label)])
        assert np.abs(box - blob).max() <= 2.0, (box, blob)


def test_transforms_fire_independently():
    """The transforms share one generator per sample: a flip says nothing about whether noise was added."""
    augment = Augment(AugmentConfig(**{**NO_AUGMENT, "hflip": 0.5, "noise": 0.5}))
    image, mask = np.full((32, 64, 3), 128, np.uint8), np.zeros((32, 64), np.uint8)
    combos = {(False, False): 0, (False, True): 0, (True, False): 0, (True, True): 0}
    for seed in range(200):
        out = augment(image, mask, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), seed=seed)
        combos[out.flipped, bool((out.image != 128).any())] += 1
    assert min(combos.values()) >= 25, combos  # 50 each expected; seeding each transform alike gave 94, 0, 0, 106


def test_batches_from_worker_processes_equal_in_process_batches():
    """Small tensors cross from the worker by value, images and masks through shared memory: same batches."""
    dataset = DrivingDataset(recorded_dataset(), [0, 1], ClassMap(), cache=True)
    batches = list(DataLoader(dataset, 4, num_workers=1, collate_fn=collate))
    assert len(batches) == -(-len(dataset) // 4)
    for start, (images, targets) in zip(range(0, len(dataset), 4), batches):
        want_images, want = collate([dataset[i] for i in range(start, min(start + 4, len(dataset)))])
        assert type(images) is torch.Tensor and images.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(images, want_images) and torch.equal(targets["mask"], want["mask"])
        for key in ("boxes", "labels"):
            assert all(type(a) is torch.Tensor and torch.equal(a, b) for a, b in zip(targets[key], want[key]))
        assert all(torch.equal(targets["policy"][k], v) for k, v in want["policy"].items())
        assert torch.equal(targets["index"], want["index"])


def test_flip_mirrors_image_labels_and_policy_targets():
    root = recorded_dataset()
    plain = DrivingDataset(root, [0], ClassMap())
    flipped = DrivingDataset(root, [0], ClassMap(), augment=Augment(AugmentConfig(**{**NO_AUGMENT, "hflip": 1.0})))
    index = len(plain) - 1
    a, b = plain[index], flipped[index]
    assert (b["image"] == a["image"].flip(-1)).all() and (b["mask"] == a["mask"].flip(-1)).all()
    expected = a["boxes"].clone()
    expected[:, [0, 2]] = WIDTH - a["boxes"][:, [2, 0]]
    assert np.allclose(b["boxes"], expected, atol=1e-3) and (b["labels"] == a["labels"]).all()
    assert b["policy"]["control"][1] == -a["policy"]["control"][1]
    assert (b["policy"]["waypoints"][:, 1] == -a["policy"]["waypoints"][:, 1]).all()
    assert (b["policy"]["waypoints"][:, 0] == a["policy"]["waypoints"][:, 0]).all()


@pytest.mark.parametrize("command, mirrored", [
    (RoadOption.LEFT, RoadOption.RIGHT), (RoadOption.RIGHT, RoadOption.LEFT),
    (RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT), (RoadOption.CHANGELANERIGHT, RoadOption.CHANGELANELEFT),
    (RoadOption.STRAIGHT, RoadOption.STRAIGHT), (RoadOption.LANEFOLLOW, RoadOption.LANEFOLLOW),
])  # fmt: skip
def test_flip_policy_commands(command, mirrored):
    record = {"speed": 5.0, "command": int(command), "route": [[1.0, 0.5], [2.0, -1.5]], "target_point": [30.0, -3.5],
              "expert_control": {"throttle": 0.4, "steer": 0.3, "brake": 0.0}, "expert_target_speed": 6.0}  # fmt: skip
    targets = policy_targets(record)
    out = flip_policy(targets)
    assert out["command"] == mirrored
    assert np.allclose(out["control"], [0.4, -0.3, 0.0]) and np.allclose(out["waypoints"][:2], [[1.0, -0.5], [2.0, 1.5]])
    assert np.allclose(out["target_point"], [30.0, 3.5]) and out["speed"] == 5.0 and out["target_speed"] == 6.0
    twice = flip_policy(out)
    assert all(np.array_equal(twice[k], targets[k]) for k in targets)


def test_look_and_bench_loader_verbs(tmp_path, capsys):
    from drivestack.cli import bench_loader, look

    config = tiny_config(recorded_dataset())
    config.look.out = str(tmp_path / "look.png")
    config.look.images, config.look.columns = 6, 3
    assert look.run(config) == 0
    import cv2

    assert cv2.imread(config.look.out).shape == (2 * HEIGHT, 3 * WIDTH, 3)
    config.bench.batches, config.bench.batch_size, config.bench.workers = 3, 4, 0
    assert bench_loader.run(config) == 0
    assert "img/s" in capsys.readouterr().out
