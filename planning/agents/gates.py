"""The network's detections as the layers under the policy read them (creep gates, red-light stop): one
decoding and the light classes that mean stop and go."""

from __future__ import annotations

import numpy as np
import torch
from drivestack.perception.classes import ClassMap
from drivestack.perception.postprocess import Decoding, decode_detections
from drivestack.sim.conventions import ActorKind, TrafficLightState

# CenterNet's 3x3 peaks and NMS 0.6: the creep gates' thresholds were tuned, and the shipped model driven, with them
GATE_DECODING = Decoding(nms_iou=0.6, peak_window=3)


def gate_detections(heatmap: np.ndarray, box: np.ndarray, width: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs of one frame -> boxes (N,4), scores (N,) and class indices (N,) scoring at least
    ``threshold``, decoded as the perception gates were tuned (:data:`GATE_DECODING`)."""
    heatmap_t = torch.from_numpy(np.asarray(heatmap, np.float32))
    boxes, scores, labels = decode_detections(heatmap_t, torch.from_numpy(np.asarray(box, np.float32)), width // heatmap_t.shape[-1],
                                              threshold, **GATE_DECODING.kwargs())[0]  # fmt: skip
    return boxes.numpy(), scores.numpy(), labels.numpy()


def light_classes(classes: ClassMap) -> tuple[list[int], list[int]]:
    """Indices of the detection classes that mean stop (red, yellow) and go (green)."""
    light = [(i, c.light_state) for i, c in enumerate(classes.det) if c.kind == ActorKind.TRAFFIC_LIGHT]
    stop = [i for i, state in light if state in (TrafficLightState.RED, TrafficLightState.YELLOW)]
    return stop, [i for i, state in light if state == TrafficLightState.GREEN]
