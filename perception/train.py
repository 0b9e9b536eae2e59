"""Train the multi-task perception network (resumes from <train.out>/last.pt; torchrun for DDP)."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from drivestack.common.checkpoint import model_spec, to_plain
from drivestack.common.training.trainer import NonFiniteLossError, Trainer
from drivestack.perception.config import PerceptionConfig, make_dataset
from drivestack.perception.data.dataset import DrivingDataset, collate
from drivestack.perception.evaluation import evaluate
from drivestack.perception.models.multitask import build_multitask
from drivestack.perception.postprocess import postprocess
from drivestack.perception.visualize import grid
from torch import nn


def render_predictions(model: nn.Module, dataset: DrivingDataset, count: int = 4, threshold: float = 0.3) -> np.ndarray:
    """Predictions (left) next to ground truth (right) for the first ``count`` samples, one pair per row."""
    from drivestack.perception.visualize import draw_boxes, overlay_mask

    step = max(1, len(dataset) // count)
    images, targets = collate([dataset[i] for i in range(0, step * count, step)])
    with torch.no_grad():
        predictions = postprocess(model(images), score_threshold=threshold)
    tiles = []
    for i, p in enumerate(predictions):
        rgb = images[i].permute(1, 2, 0).numpy()
        truth = overlay_mask(rgb, targets["mask"][i].numpy(), dataset.class_map)
        truth = draw_boxes(truth, targets["boxes"][i].numpy(), targets["labels"][i].numpy(), dataset.class_map)
        tiles += [p.plot(rgb, dataset.class_map), truth]
    return grid(tiles, 2)


def train_perception(config: PerceptionConfig) -> int:
    torch.manual_seed(config.train.seed)
    train_set = make_dataset(config, "train", augment=True)
    val_set = make_dataset(config, "val", augment=False)
    model = build_multitask(config.model)
    trainer = Trainer(
        model, train_set, config.train, model_spec("perception", config.model), collate_fn=collate, val_set=val_set,
        evaluate=lambda m, ds: evaluate(m, ds, config.classes, config.val.batch_size, size_bins=None,
                                       decoding=config.val.decoding).flat(),
        visualize=lambda m, ds: {"val/predictions_vs_truth": render_predictions(m, ds)},
        meta={"seg_classes": to_plain(config.classes.seg), "det_classes": to_plain(config.classes.det),
              "input": "uint8 RGB (B,3,H,W), H and W multiples of 32", "image_size": list(train_set.shape)},
        run_config=to_plain(config),
    )  # fmt: skip
    if trainer.dist.is_main:
        params = sum(p.numel() for p in model.parameters())
        found = train_set.towns_of()
        missing = sorted(set(config.data.train_towns) - found)
        if missing:
            print(f"warning: {config.data.root} has no completed episodes of train towns {missing}; training on "
                  f"{len(config.data.train_towns) - len(missing)} of {len(config.data.train_towns)} towns "
                  "(docs/perception.md gives the collect command of the default recipe)")  # fmt: skip
        print(f"train: {len(train_set)} frames (towns {sorted(found)}), val: {len(val_set)} frames; "
              f"{params / 1e6:.2f} M parameters; {trainer.total_steps} steps; out {config.train.out}")  # fmt: skip
    return fit_and_report(trainer, "train")


def fit_and_report(trainer: Trainer, verb: str) -> int:
    """Run ``trainer`` and print where the checkpoint went, the time taken and the final metrics.

    Exit code 1 when a non-finite loss stopped training (the last good checkpoint is kept), else 0."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    try:
        metrics = trainer.fit()
    except NonFiniteLossError as e:
        print(f"{verb}: {e}", file=sys.stderr)
        return 1
    if trainer.dist.is_main:
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        print(f"done: {trainer.checkpoint_path}, {wall / 60:.1f} min wall-clock ({cpu / 60:.1f} min CPU in the main "
              f"process); " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k))  # fmt: skip
    return 0
