"""Evaluate a perception checkpoint: mIoU, mAP@0.5 and @0.5:0.95 per class, latency; JSON, table, renders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import torch
from drivestack.common.checkpoint import load_model
from drivestack.perception.classes import classes_from_meta
from drivestack.perception.config import PerceptionConfig
from drivestack.perception.data.dataset import DrivingDataset, collate
from drivestack.perception.evaluation import evaluate, measure_latency
from drivestack.perception.postprocess import Decoding, postprocess
from drivestack.perception.visualize import draw_boxes, overlay_mask


def render(model: torch.nn.Module, dataset: DrivingDataset, count: int, threshold: float, out: Path,
           decoding: Decoding) -> None:  # fmt: skip
    """Write ``count`` PNGs, each the prediction (top) above the ground truth (bottom)."""
    out.mkdir(parents=True, exist_ok=True)
    step = max(1, len(dataset) // max(1, count))
    for n, index in enumerate(range(0, step * count, step)):
        images, targets = collate([dataset[index]])
        with torch.no_grad():
            prediction = postprocess(model(images), score_threshold=threshold, **decoding.kwargs())[0]
        rgb = images[0].permute(1, 2, 0).numpy()
        truth = overlay_mask(rgb, targets["mask"][0].numpy(), dataset.class_map)
        truth = draw_boxes(truth, targets["boxes"][0].numpy(), targets["labels"][0].numpy(), dataset.class_map)
        pair = cv2.vconcat([prediction.plot(rgb, dataset.class_map), truth])
        cv2.imwrite(str(out / f"{n:03d}_{index:05d}.png"), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))


def val_perception(config: PerceptionConfig) -> int:
    cfg = config.val
    model, checkpoint = load_model(cfg.checkpoint, ema=cfg.ema, builder="perception")  # a driving model's too
    classes = classes_from_meta(checkpoint["meta"], "checkpoint meta")
    dataset = DrivingDataset(config.data.root, config.data.towns(cfg.split), classes, config.data.camera, cache=False)
    result = evaluate(model, dataset, classes, cfg.batch_size, cfg.score_threshold, decoding=cfg.decoding)
    size = dataset.shape
    result.latency_ms = {
        f"pytorch_cpu_b1_{size[1]}x{size[0]}": measure_latency(model, size, 1, cfg.latency_runs),
        "threads": float(torch.get_num_threads()),
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = "ema" if cfg.ema and checkpoint.get("ema_state_dict") is not None else "raw"
    epoch = checkpoint.get("epoch")  # None for weights taken out of a driving model (drivestack package)
    report = {"checkpoint": cfg.checkpoint, "weights": weights, "epoch": epoch, "split": cfg.split,
              "towns": config.data.towns(cfg.split), "decoding": cfg.decoding.kwargs(), **result.to_dict()}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    trained = f"epoch {epoch}, " if epoch is not None else ""
    header = f"{cfg.checkpoint} ({trained}{weights} weights) on {cfg.split} towns {config.data.towns(cfg.split)}, {result.images} images"
    (out / "metrics.txt").write_text(header + "\n\n" + result.table() + "\n")
    render(model, dataset, cfg.render, cfg.render_threshold, out / "renders", cfg.decoding)
    print(header + "\n\n" + result.table())
    print(f"\nwrote {out / 'metrics.json'}, {out / 'metrics.txt'} and {cfg.render} renders in {out / 'renders'}")
    return 0
