"""Recorded driving frames as training samples for perception (and, later, the driving policy).

A sample holds the RGB frame, its segmentation mask in training classes, the detection boxes, and the
policy targets from ``measurements.jsonl`` (speed, command, route waypoints in the ego frame, the expert's
control). Splits are lists of town seeds, so frames of one town never appear in two splits.

A horizontal flip mirrors the policy targets with the image (:func:`flip_policy`): steering and the
waypoints' lateral coordinate change sign, LEFT/RIGHT and lane-change commands swap.

Read through a side camera with a ``reference_camera`` (the one the policy drives with), a frame becomes the
view of a virtual car that carries its reference camera where the side camera is (:class:`ViewShift`): the
route and target point are re-expressed in that car's frame, so the path label leads from the displaced pose
back to the route (side-camera augmentation, as in NVIDIA's PilotNet and CIL).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.augment import Augment
from drivestack.sim.conventions import RoadOption
from drivestack.sim.geometry import to_local
from drivestack.sim.record.dataset_io import DatasetError, image_path, load_manifest, read_measurements, read_rgb, read_semantic
from torch.utils.data import Dataset, default_collate

WAYPOINTS = 20  # route points per sample (the recorder stores up to 20, 1 m apart); missing ones are padded
SMALL_TENSOR_BYTES = 1 << 16  # batch tensors below this cross from DataLoader workers by value (see Batch)
MIRRORED_COMMAND = {
    RoadOption.LEFT: RoadOption.RIGHT, RoadOption.RIGHT: RoadOption.LEFT,
    RoadOption.CHANGELANELEFT: RoadOption.CHANGELANERIGHT, RoadOption.CHANGELANERIGHT: RoadOption.CHANGELANELEFT,
}  # fmt: skip


@dataclass
class DataConfig:
    """Where the recorded dataset is and how it is split (by town seed)."""

    root: str = "data/perception"  # (str) dataset folder written by `drivestack collect`
    camera: str = "front"  # (str) camera name in the dataset
    train_towns: list[int] = field(default_factory=lambda: list(range(0, 22)))  # (list[int]) town seeds of the training split
    val_towns: list[int] = field(default_factory=lambda: [22, 23, 24])  # (list[int]) town seeds of the validation split
    test_towns: list[int] = field(default_factory=lambda: [25, 26, 27, 28, 29])  # (list[int]) town seeds of the test split
    cache: bool = True  # (bool) decode every frame once into RAM (uint8) instead of per sample

    def __post_init__(self) -> None:
        splits = {"train_towns": self.train_towns, "val_towns": self.val_towns, "test_towns": self.test_towns}
        for a, towns_a in splits.items():
            for b, towns_b in splits.items():
                shared = sorted(set(towns_a) & set(towns_b))
                if a < b and shared:
                    raise ValueError(f"towns {shared} are in both {a} and {b}; splits must not share towns")

    def towns(self, split: str) -> list[int]:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got '{split}'")
        return getattr(self, f"{split}_towns")


def policy_targets(record: dict) -> dict[str, np.ndarray]:
    """Policy inputs and labels of one record: speed, command, target point, waypoints (+ validity), expert
    control (throttle, steer, brake) and the expert's target speed (NaN where the record has none)."""
    route = np.zeros((WAYPOINTS, 2), np.float32)
    points = np.asarray(record["route"], np.float32).reshape(-1, 2)[:WAYPOINTS]
    route[: len(points)] = points
    valid = np.zeros(WAYPOINTS, bool)
    valid[: len(points)] = True
    c = record["expert_control"]
    return {
        "speed": np.float32(record["speed"]),
        "command": np.int64(record["command"]),
        "target_point": np.asarray(record["target_point"], np.float32).reshape(2),
        "waypoints": route,
        "waypoints_valid": valid,
        "control": np.array([c["throttle"], c["steer"], c["brake"]], np.float32),
        "target_speed": np.float32(np.nan if record["expert_target_speed"] is None else record["expert_target_speed"]),
        "displaced": np.bool_(False),
    }


SAME_MOUNT_KEYS = ("width", "height", "fov", "z", "roll", "pitch")  # a side camera must match its reference in these


@dataclass(frozen=True)
class ViewShift:
    """Pose of a virtual ego in the recorded ego's frame: ``x`` metres forward, ``y`` right, ``yaw`` degrees
    (positive turns right). It carries the reference camera where the side camera is mounted."""

    x: float
    y: float
    yaw: float

    @classmethod
    def between(cls, camera: dict, reference: dict) -> ViewShift:
        """The shift that puts ``reference`` (a camera mount, as in configs/sim.yaml) where ``camera`` is.
        Both must see alike (size, FOV, height, roll, pitch) and the reference must look straight ahead."""
        differ = [k for k in SAME_MOUNT_KEYS if camera.get(k) != reference.get(k)]
        if differ or reference.get("yaw", 0.0):
            why = f"differs in {differ}" if differ else f"'{reference['name']}' has yaw {reference['yaw']}, needs 0"
            raise ValueError(f"camera '{camera['name']}' cannot stand in for '{reference['name']}': {why}")
        yaw = math.radians(camera.get("yaw", 0.0))
        rx, ry = reference["x"], reference["y"]  # the reference mount, turned with the virtual ego
        return cls(camera["x"] - (rx * math.cos(yaw) - ry * math.sin(yaw)),
                   camera["y"] - (rx * math.sin(yaw) + ry * math.cos(yaw)), camera.get("yaw", 0.0))  # fmt: skip


def displace_policy(targets: dict[str, np.ndarray], shift: ViewShift) -> dict[str, np.ndarray]:
    """Policy targets seen from the virtual ego at ``shift``: waypoints and target point in its frame, marked
    ``displaced`` (speed, control and the expert's target speed stay those of the recorded pose)."""
    out = dict(targets)
    yaw = math.radians(shift.yaw)
    out["waypoints"] = to_local(targets["waypoints"], shift.x, shift.y, yaw).astype(np.float32)
    out["target_point"] = to_local(targets["target_point"].reshape(1, 2), shift.x, shift.y, yaw)[0].astype(np.float32)
    out["displaced"] = np.bool_(True)
    return out


def flip_policy(targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Policy targets of the left-right mirrored scene."""
    out = dict(targets)
    out["waypoints"] = targets["waypoints"] * np.array([1.0, -1.0], np.float32)
    out["target_point"] = targets["target_point"] * np.array([1.0, -1.0], np.float32)
    out["control"] = targets["control"] * np.array([1.0, -1.0, 1.0], np.float32)
    command = int(targets["command"])
    out["command"] = np.int64(MIRRORED_COMMAND.get(command, command))
    return out


@dataclass
class FrameRef:
    """One saved frame: its episode folder and measurements record."""

    episode: Path
    record: dict


def split_frames(root: str | Path, towns: list[int]) -> list[FrameRef]:
    """Frames of the completed episodes whose town seed is in ``towns``, in manifest order."""
    root = Path(root)
    wanted = set(towns)
    frames = []
    for entry in load_manifest(root).episodes:
        if entry.status == "completed" and entry.town_seed in wanted:
            episode = root / entry.name
            frames += [FrameRef(episode, r) for r in read_measurements(episode / "measurements.jsonl")]
    return frames


class DrivingDataset(Dataset):
    """Frames of some towns as dict samples; see the module docstring. ``augment`` is for training only;
    ``reference_camera`` (another camera of the dataset) makes ``camera`` a displaced view of it."""

    def __init__(
        self, root: str | Path, towns: list[int], class_map: ClassMap, camera: str = "front",
        augment: Augment | None = None, cache: bool = False, seed: int = 0, reference_camera: str = "",
    ) -> None:  # fmt: skip
        self.root = Path(root)
        self.class_map = class_map
        self.camera = camera
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.frames = split_frames(root, towns)
        if not self.frames:
            raise DatasetError(self.root, f"no completed episodes of towns {towns}")
        manifest = load_manifest(root)
        fmt = manifest.format
        cameras = {c.name: c for c in fmt.cameras}
        if camera not in cameras:
            raise DatasetError(self.root / "manifest.json", f"no camera '{camera}' (has {sorted(cameras)})")
        self.shape = (cameras[camera].height, cameras[camera].width)
        self.shift = self._view_shift(manifest.config, reference_camera) if reference_camera and reference_camera != camera else None
        self.rgb_ext = fmt.rgb_format
        self.lut = class_map.seg_lut()
        self.images: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        if cache:
            self.images = np.empty((len(self.frames), *self.shape, 3), np.uint8)
            self.masks = np.empty((len(self.frames), *self.shape), np.uint8)
            with ThreadPoolExecutor(2) as pool:  # OpenCV decodes without the GIL
                for i, (image, mask) in enumerate(pool.map(self._decode, range(len(self.frames)))):
                    self.images[i], self.masks[i] = image, mask

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """Augmentations of epoch ``epoch`` (call before creating the epoch's DataLoader iterator)."""
        self.epoch = epoch

    def _view_shift(self, collect_config: dict, reference: str) -> ViewShift:
        manifest = self.root / "manifest.json"
        mounts = {c["name"]: c for c in collect_config.get("sim", {}).get("cameras", [])}
        missing = [name for name in (reference, self.camera) if name not in mounts]
        if missing:
            raise DatasetError(manifest, f"no mount recorded for camera '{missing[0]}' (has {sorted(mounts)})")
        try:
            return ViewShift.between(mounts[self.camera], mounts[reference])
        except ValueError as error:
            raise DatasetError(manifest, str(error)) from None

    def policy(self, index: int) -> dict[str, np.ndarray]:
        """Policy targets of frame ``index`` (displaced for a side camera)."""
        targets = policy_targets(self.frames[index].record)
        return targets if self.shift is None else displace_policy(targets, self.shift)

    def towns_of(self) -> set[int]:
        return {int(f.episode.name[4:].split("_")[0]) for f in self.frames}

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ref = self.frames[index]
        frame = ref.record["frame"]
        image = read_rgb(image_path(ref.episode, "rgb", self.camera, frame, self.rgb_ext), self.shape)
        tags = read_semantic(image_path(ref.episode, "semantic", self.camera, frame, "png"), self.shape)
        return image, self.lut[tags]

    def boxes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(N,4) float32 x1,y1,x2,y2 (x2, y2 exclusive, i.e. the right/bottom pixel edges) and (N,) labels;
        clipped to the image, boxes of no area left out (the augmentation expects valid boxes)."""
        height, width = self.shape
        boxes, labels = [], []
        for b in self.frames[index].record["boxes"].get(self.camera, []):
            label = self.class_map.det_class(b["kind"], b["light_state"])
            x1, y1, x2, y2 = max(b["x1"], 0), max(b["y1"], 0), min(b["x2"], width), min(b["y2"], height)
            if label is not None and x2 > x1 and y2 > y1:
                boxes.append((x1, y1, x2, y2))
                labels.append(label)
        return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)

    def __getitem__(self, index: int) -> dict:
        if self.images is not None:
            image, mask = self.images[index], self.masks[index]
        else:
            image, mask = self._decode(index)
        boxes, labels = self.boxes(index)
        policy = self.policy(index)
        flipped = False
        if self.augment is not None:
            seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
            out = self.augment(image, mask, boxes, labels, seed)
            image, mask, boxes, labels, flipped = out.image, out.mask, out.boxes, out.labels, out.flipped
            if flipped:
                policy = flip_policy(policy)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)),
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels),
            "policy": {k: torch.as_tensor(v) for k, v in policy.items()},
            "flipped": flipped,
            "index": index,
        }


class Batch(tuple):
    """``(images, targets)`` from :func:`collate`, sent from a DataLoader worker in one message.

    A pickled tensor travels as a shared-memory file whose descriptor is fetched over a socket, about 0.2 ms of
    the receiving process's CPU each, and a batch of 32 has 70 small tensors (boxes, labels, policy targets,
    index). Contiguous tensors under ``SMALL_TENSOR_BYTES`` are therefore pickled by value as NumPy arrays and
    rebuilt as tensors on arrival: the main process receives a plain ``(images, targets)`` tuple of tensors.
    """

    def __reduce__(self) -> tuple:
        return _from_numpy, (_small_to_numpy(tuple(self)),)


def _small_to_numpy(data: Any) -> Any:
    """``data`` with its small contiguous tensors as NumPy arrays (nested dicts, lists, tuples)."""
    if isinstance(data, torch.Tensor):
        return data.numpy() if data.nbytes < SMALL_TENSOR_BYTES and data.is_contiguous() else data
    if isinstance(data, dict):
        return {k: _small_to_numpy(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_small_to_numpy(v) for v in data)
    return data


def _from_numpy(data: Any) -> Any:
    """``data`` with its NumPy arrays as tensors (the inverse of ``_small_to_numpy``)."""
    if isinstance(data, np.ndarray):
        return torch.from_numpy(data)
    if isinstance(data, dict):
        return {k: _from_numpy(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_from_numpy(v) for v in data)
    return data


def collate(samples: list[dict]) -> Batch:
    """-> (images (B,3,H,W) uint8, targets: mask (B,H,W) uint8, boxes/labels lists, policy stacked, flipped, index).

    Images keep the samples' HxWx3 memory: the batch is channels-last (NHWC strides), so stacking is a plain
    copy and the trainer's channels-last conversion none. In a DataLoader worker, images and masks are stacked
    straight into shared memory (``default_collate``), so sending them to the main process copies nothing."""
    images = default_collate([s["image"].permute(1, 2, 0) for s in samples]).permute(0, 3, 1, 2)
    targets = {
        "mask": default_collate([s["mask"] for s in samples]),
        "boxes": [s["boxes"] for s in samples],
        "labels": [s["labels"] for s in samples],
        "policy": {k: torch.stack([s["policy"][k] for s in samples]) for k in samples[0]["policy"]},
        "flipped": torch.tensor([s["flipped"] for s in samples]),
        "index": torch.tensor([s["index"] for s in samples]),
    }
    return Batch((images, targets))
