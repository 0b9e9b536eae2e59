"""The detections a tracker follows: vehicles and pedestrians decoded from the network's raw outputs."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from drivestack.perception.classes import ClassMap
from drivestack.perception.postprocess import decode_detections
from drivestack.sim.conventions import ActorKind

TRACKED_KINDS = frozenset({int(ActorKind.VEHICLE), int(ActorKind.PEDESTRIAN)})  # traffic lights are not tracked


def tracked_classes(classes: ClassMap) -> np.ndarray:
    """Indices of the detection classes of tracked kinds."""
    return np.array([i for i, c in enumerate(classes.det) if c.kind in TRACKED_KINDS], np.int64)


def tracked_detections(outputs: Mapping[str, np.ndarray], classes: ClassMap, image_width: int,
                       score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Raw outputs of one frame (``heatmap`` (1,C,h,w) logits, ``box`` (1,4,h,w)) -> boxes (N,4), scores (N,) and
    class indices (N,) of vehicles and pedestrians scoring at least ``score_threshold`` (the default decoding)."""
    heatmap = torch.from_numpy(np.asarray(outputs["heatmap"], np.float32))
    box = torch.from_numpy(np.asarray(outputs["box"], np.float32))
    boxes, scores, labels = decode_detections(heatmap, box, image_width // heatmap.shape[-1], score_threshold)[0]
    keep = np.isin(labels.numpy(), tracked_classes(classes))
    return boxes.numpy()[keep], scores.numpy()[keep], labels.numpy()[keep]
