"""Render exactly what enters the network (after augmentation) with its labels to a PNG grid."""

from __future__ import annotations

from pathlib import Path

import cv2
from drivestack.perception.config import PerceptionConfig, make_dataset
from drivestack.perception.visualize import draw_boxes, draw_policy, grid, overlay_mask


def look(config: PerceptionConfig) -> int:
    cfg = config.look
    dataset = make_dataset(config, cfg.split, augment=cfg.split == "train", cache=False)
    dataset.set_epoch(cfg.epoch)
    tiles = []
    for index in range(cfg.start, min(len(dataset), cfg.start + cfg.images)):
        sample = dataset[index]
        image = sample["image"].permute(1, 2, 0).numpy()  # the uint8 tensor the network gets
        tile = overlay_mask(image, sample["mask"].numpy(), dataset.class_map, alpha=0.35)
        tile = draw_boxes(tile, sample["boxes"].numpy(), sample["labels"].numpy(), dataset.class_map)
        tiles.append(draw_policy(tile, {k: v.numpy() for k, v in sample["policy"].items()}))
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid(tiles, cfg.columns), cv2.COLOR_RGB2BGR))
    print(f"wrote {out}: {len(tiles)} {cfg.split} samples from {cfg.start} (epoch {cfg.epoch} augmentation)")
    return 0
