"""Train the driving policy by imitation (privileged ground truth or perception predictions as input)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from drivestack.common.checkpoint import load_checkpoint, model_spec, to_plain
from drivestack.common.config import config_from_dict
from drivestack.common.training.distributed import resolve_device
from drivestack.common.training.trainer import TrainConfig, Trainer
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.augment import Augment, AugmentConfig
from drivestack.perception.data.dataset import DataConfig, DrivingDataset, collate
from drivestack.perception.losses import detection_targets
from drivestack.perception.models.multitask import DET_STRIDE
from drivestack.perception.train import fit_and_report
from drivestack.planning.policy.driving_model import DrivingModelConfig, build_policy_training
from drivestack.planning.policy.input_cache import PolicyInputCache, build_input_cache
from drivestack.planning.policy.labels import path_points
from drivestack.planning.policy.model import (
    PolicyConfig,
    ground_truth_to_policy_inputs,
    is_recovery,
    is_slowing,
    is_start,
    is_wait,
)
from drivestack.sim.record.dataset_io import MANIFEST_NAME, DatasetError, load_manifest
from torch import nn
from torch.utils.data import ConcatDataset


@dataclass
class PolicyTrainConfig:
    """``drivestack train-policy``."""

    inputs: Literal["ground_truth", "perception"] = "perception"  # (str) what the policy sees while training
    perception: str = "runs/perception/last.pt"  # (str) perception checkpoint (its weights are frozen into the driving model)
    init: str = ""  # (str) policy checkpoint to start from (e.g. the ground-truth stage); empty = from scratch
    data: DataConfig = field(default_factory=lambda: DataConfig(root="data/driving"))
    extra_roots: list[str] = field(default_factory=list)  # (list[str]) more datasets whose train-town frames join training
    side_cameras: list[str] = field(default_factory=list)  # (list[str]) cameras besides data.camera whose frames join training as displaced views, from every dataset that recorded them (path and target point re-expressed, speed and brake terms off; docs/policy.md "Side views")
    cache_views: int = 2  # (int) inputs=perception: compute the perception outputs once per augmented view and keep them (epoch e reads view e mod cache_views); 0 = run perception every step
    cache_dir: str = "runs/policy_inputs"  # (str) folder of those cached outputs, one subfolder per (weights, dataset, augmentation)
    classes: ClassMap = field(default_factory=ClassMap)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(affine=0.0))
    model: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out="runs/policy", epochs=10, batch_size=32, lr=1e-3,
                                                                    warmup_steps=50, ema=False))  # fmt: skip

    def __post_init__(self) -> None:
        if self.cache_views < 0:
            raise ValueError(f"cache_views must be >= 0 (0 = no cache), got {self.cache_views}")
        if self.data.camera in self.side_cameras or len(set(self.side_cameras)) != len(self.side_cameras):
            raise ValueError(f"side_cameras must be distinct and exclude data.camera '{self.data.camera}', got {self.side_cameras}")


class FrameUnion(ConcatDataset):
    """Driving datasets as one training split: sample indices are global (:class:`PolicyBatches` looks labels up
    in ``frames``) and ``set_epoch`` reaches every part."""

    def __init__(self, parts: list[DrivingDataset]) -> None:
        for part in parts[1:]:
            if part.shape != parts[0].shape:
                (h, w), (h0, w0) = part.shape, parts[0].shape
                raise DatasetError(part.root / MANIFEST_NAME, f"camera '{part.camera}' is {h}x{w} (HxW), but {parts[0].root} "
                                                              f"has {h0}x{w0}; the frames of one training split must match")
        super().__init__(parts)
        self.frames = [frame for part in parts for frame in part.frames]

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "index": index}

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            part.set_epoch(epoch)


def training_set(config: PolicyTrainConfig, augment: Augment | None, model: nn.Module | None = None) -> DrivingDataset | FrameUnion:
    """The train towns' frames of ``data.root`` and, with ``extra_roots``, of those datasets too; with ``model``
    (inputs=perception and ``cache_views``) each dataset's perception outputs come from its cache."""
    d = config.data
    roots = [d.root, *config.extra_roots]
    parts = [DrivingDataset(root, d.train_towns, config.classes, d.camera, augment, d.cache, config.train.seed) for root in roots]
    recorded = {root: {c.name for c in load_manifest(root).format.cameras} for root in roots} if config.side_cameras else {}
    for camera in config.side_cameras:
        having = [root for root in roots if camera in recorded[root]]
        if not having:
            raise DatasetError(Path(d.root) / MANIFEST_NAME, f"side camera '{camera}' is in none of the datasets {roots}")
        parts += [DrivingDataset(root, d.train_towns, config.classes, camera, augment, d.cache, config.train.seed,
                                 reference_camera=d.camera) for root in having]  # fmt: skip
    if model is not None:
        parts = [cached_inputs(config, part, model, config.cache_views) for part in parts]
    return FrameUnion(parts) if len(parts) > 1 else parts[0]


def cached_inputs(config: PolicyTrainConfig, dataset: DrivingDataset, model: nn.Module, views: int) -> PolicyInputCache:
    """``dataset`` with its perception outputs computed once per view (:mod:`planning.input_cache`)."""
    augment = to_plain(config.augment) if dataset.augment is not None else None
    device = resolve_device(config.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    layout = torch.channels_last if config.train.channels_last else torch.contiguous_format
    model.to(device, memory_format=layout)

    def perceive(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg, det = model.model.perceive(images.to(device).contiguous(memory_format=layout))
        return seg.cpu(), det.cpu()

    return build_input_cache(perceive, dataset, config.perception, augment, views, config.cache_dir,
                             config.train.batch_size, config.train.workers)  # fmt: skip


MAX_START_WEIGHT = 50.0  # a balanced start weight is capped here (a handful of start frames must not dominate)


def frame_counts(dataset: DrivingDataset | FrameUnion, config: PolicyConfig) -> tuple[int, int, int]:
    """Frames of ``dataset`` where the ego stands and the expert starts, where it stands and waits, and
    where it moves and the expert slows down (displaced views left out: their speed terms do not count)."""
    parts = dataset.datasets if isinstance(dataset, FrameUnion) else [dataset]
    frames = [f for part in parts if part.shift is None for f in part.frames]
    speed = torch.tensor([f.record["speed"] for f in frames], dtype=torch.float32)
    target = torch.tensor([f.record.get("expert_target_speed") or 0.0 for f in frames], dtype=torch.float32)
    return tuple(int(select(speed, target, config).sum()) for select in (is_start, is_wait, is_slowing))


def resolve_start_weight(config: PolicyConfig, starts: int, waits: int) -> float:
    """``config.start_weight``, or for 0 the weight that makes ``starts`` start frames weigh as much as
    ``waits`` waiting frames (:func:`frame_counts`)."""
    if config.start_weight > 0:
        return config.start_weight
    return min(max(waits / max(starts, 1), 1.0), MAX_START_WEIGHT)


class PolicyBatches:
    """Collate for policy training: images or privileged inputs, plus path, target-speed and weight labels
    ("standing, expert starts" frames weigh ``start_weight``, slowing frames ``model.slow_weight``, and the path
    term of recovery frames ``model.recovery_weight``); displaced views have no speed or brake label (the expert
    judged those at the recorded pose)."""

    def __init__(self, dataset: DrivingDataset | FrameUnion, config: PolicyTrainConfig, gaussian_alpha: float,
                 start_weight: float = 1.0):  # fmt: skip
        self.dataset, self.config, self.alpha, self.start_weight = dataset, config, gaussian_alpha, start_weight

    def __call__(self, samples: list[dict]) -> tuple[dict, dict]:
        if "inputs" in samples[0]:  # perception outputs from the cache (planning.input_cache), uint8
            p = {k: torch.stack([s["policy"][k] for s in samples]) for k in samples[0]["policy"]}
            cached = torch.stack([s["inputs"] for s in samples]).float().div_(255)
            split = len(self.config.classes.seg)
            inputs = {"seg": cached[:, :split], "det": cached[:, split:]}
            index = [s["index"] for s in samples]
        else:
            images, t = collate(samples)
            p, index = t["policy"], t["index"].tolist()
            if self.config.inputs == "ground_truth":
                size = (images.shape[-2] // DET_STRIDE, images.shape[-1] // DET_STRIDE)
                heat, _, _ = detection_targets(t["boxes"], t["labels"], len(self.config.classes.det), size, DET_STRIDE, self.alpha)
                seg, det = ground_truth_to_policy_inputs(t["mask"], heat, len(self.config.classes.seg))
                inputs = {"seg": seg, "det": det}
            else:
                inputs = {"image": images}
        measured = {"speed": p["speed"], "command": p["command"], "target_point": p["target_point"]}
        return inputs | measured, self.labels(p, index)

    def labels(self, p: dict[str, torch.Tensor], index: list[int]) -> dict[str, torch.Tensor]:
        """Path, validity, target-speed and weight labels of a batch (policy targets ``p``, dataset indices)."""
        m = self.config.model
        paths, valid = zip(*(path_points(w.numpy(), v.numpy(), m.num_points, m.point_spacing)
                             for w, v in zip(p["waypoints"], p["waypoints_valid"])))  # fmt: skip
        frames = [self.dataset.frames[i] for i in index]
        unlabelled = [f.episode for f in frames if f.record.get("expert_target_speed") is None]
        if unlabelled:
            raise ValueError(f"{unlabelled[0]}: frames without expert_target_speed; re-record with this version")
        target_speed = torch.tensor([f.record["expert_target_speed"] for f in frames], dtype=torch.float32)
        speed = p["speed"].float()
        weight = torch.where(is_slowing(speed, target_speed, m), m.slow_weight, 1.0)
        weight = torch.where(is_start(speed, target_speed, m), self.start_weight, weight)
        path, path_valid = torch.from_numpy(np.stack(paths)), torch.from_numpy(np.stack(valid))
        return {
            "path": path,
            "path_valid": path_valid,
            "target_speed": target_speed,
            "weight": weight,
            "speed_valid": ~p["displaced"],
            "path_weight": torch.where(is_recovery(path, path_valid, m), m.recovery_weight, 1.0),
        }


def policy_metrics(model: nn.Module, dataset: DrivingDataset, batches: PolicyBatches, batch_size: int = 64) -> dict[str, float]:
    """Mean path error (m), target-speed error (m/s) and brake accuracy on ``dataset``; brake accuracy also
    on the standing frames alone, where the expert starts (``start_acc``) and where it waits (``wait_acc``),
    the target-speed error on slowing frames (``slow_speed_l1``) and the lateral path error on recovery frames
    (``recovery_lateral_l1``, metres)."""
    sums = {"path_l1_m": 0.0, "speed_l1": 0.0, "brake_acc": 0.0}
    standing = {"start_acc": [0.0, 0], "wait_acc": [0.0, 0]}
    slowing, recovery = [0.0, 0], [0.0, 0]
    n = 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            inputs, targets = batches([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            out = model(inputs)
            valid = targets["path_valid"].float().unsqueeze(-1)
            b = len(targets["target_speed"])
            sums["path_l1_m"] += float((torch.abs(out["path"] - targets["path"]) * valid).sum() / valid.sum().clamp(min=1) / 2) * b
            sums["speed_l1"] += float(torch.abs(out["target_speed"] - targets["target_speed"]).mean()) * b
            brake = targets["target_speed"] < batches.config.model.brake_below
            correct = (out["brake"] > 0) == brake
            sums["brake_acc"] += float(correct.float().mean()) * b
            for name, select in (("start_acc", is_start), ("wait_acc", is_wait)):
                chosen = select(inputs["speed"].float(), targets["target_speed"], batches.config.model)
                standing[name][0] += float(correct[chosen].sum())
                standing[name][1] += int(chosen.sum())
            chosen = is_slowing(inputs["speed"].float(), targets["target_speed"], batches.config.model)
            slowing[0] += float(torch.abs(out["target_speed"] - targets["target_speed"])[chosen].sum())
            slowing[1] += int(chosen.sum())
            chosen = is_recovery(targets["path"], targets["path_valid"], batches.config.model)
            lateral = torch.abs(out["path"][..., 1] - targets["path"][..., 1]) * targets["path_valid"]
            recovery[0] += float((lateral[chosen].sum(1) / targets["path_valid"][chosen].sum(1)).sum())
            recovery[1] += int(chosen.sum())
            n += b
    metrics = {k: v / max(n, 1) for k, v in sums.items()}
    metrics |= {k: hits / count for k, (hits, count) in standing.items() if count}
    metrics |= {"slow_speed_l1": slowing[0] / slowing[1]} if slowing[1] else {}
    return metrics | ({"recovery_lateral_l1": recovery[0] / recovery[1]} if recovery[1] else {})


def build_model(config: PolicyTrainConfig) -> tuple[nn.Module, DrivingModelConfig]:
    """The trainable driving model: perception weights from its checkpoint, policy from ``init`` or scratch."""
    perception = load_checkpoint(config.perception)
    spec = perception["model"]["config"]
    model_config = DrivingModelConfig(perception=config_from_dict(type(DrivingModelConfig().perception), spec, config.perception),
                                      policy=config.model)  # fmt: skip
    model = build_policy_training(model_config)
    model.model.perception.load_state_dict(perception["state_dict"])  # the trained weights, not the EMA copy
    if config.init:
        init = load_checkpoint(config.init)
        state = init["state_dict"]
        policy = {k.removeprefix("model.policy."): v for k, v in state.items() if k.startswith("model.policy.")}
        model.model.policy.load_state_dict(policy)
    return model, model_config


def train_policy(config: PolicyTrainConfig) -> int:
    torch.manual_seed(config.train.seed)
    model, model_config = build_model(config)
    perception_meta = load_checkpoint(config.perception).get("meta", {})
    augment = Augment(config.augment) if config.augment.enabled else None
    cache = model if config.inputs == "perception" and config.cache_views > 0 else None
    train_set = training_set(config, augment, cache)
    val_set = DrivingDataset(config.data.root, config.data.val_towns, config.classes, config.data.camera, None, config.data.cache)
    if cache is not None:
        val_set = cached_inputs(config, val_set, model, 1)
    starts, waits, slows = frame_counts(train_set, config.model)
    start_weight = resolve_start_weight(config.model, starts, waits)
    batches = PolicyBatches(train_set, config, model_config.perception.gaussian_alpha, start_weight)
    val_batches = PolicyBatches(val_set, config, model_config.perception.gaussian_alpha)
    trainer = Trainer(
        model, train_set, config.train, model_spec("driving", model_config), collate_fn=batches, val_set=val_set,
        evaluate=lambda m, ds: policy_metrics(m, ds, val_batches),
        meta={**perception_meta, "policy_inputs": config.inputs, "commands": "RoadOption values",
              "outputs": "path (B,K,2) m ego frame, target_speed (B,) m/s, brake (B,) logit"},
        run_config=to_plain(config),
    )  # fmt: skip
    if trainer.dist.is_main:
        params = sum(p.numel() for p in model.model.policy.parameters())
        print(f"train-policy ({config.inputs} inputs): {len(train_set)} frames, val {len(val_set)}; "
              f"policy {params / 1e6:.2f} M parameters; {trainer.total_steps} steps; out {config.train.out}\n"
              f"standing frames: {starts} where the expert starts (loss weight {start_weight:.1f}), {waits} where it waits; "
              f"{slows} slowing frames (loss weight {config.model.slow_weight:.1f})")  # fmt: skip
    return fit_and_report(trainer, "train-policy")


def privileged_config(config: PolicyTrainConfig) -> PolicyTrainConfig:
    """The ground-truth stage of a two-stage run (same data, its own output folder)."""
    return replace(config, inputs="ground_truth", init="", train=replace(config.train, out=config.train.out + "_gt"))
