"""Decoding of the raw network outputs, outside the network: the same code serves PyTorch and ONNX outputs.

:func:`postprocess` takes the three raw outputs (``seg``, ``heatmap``, ``box``) as torch tensors or NumPy
arrays and returns one :class:`Prediction` per image: the class map (argmax of ``seg``) and detections
(top-k heatmap cells, score threshold, box decoding, class-wise NMS with ``torchvision.ops.batched_nms``).

Every cell is a candidate by default (``peak_window=1``), and NMS alone removes duplicates. CenterNet's 3x3
max-pooling (``peak_window=3``) also drops a small object whose centre cell neighbours a stronger one's:
the default found more of the small vehicles and pedestrians (docs/perception.md, "Post-processing").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import torch
from drivestack.perception.losses import cell_boxes
from torchvision.ops import batched_nms

NMS_IOU = 0.55  # class-wise NMS threshold (chosen on the validation towns: docs/perception.md)
PEAK_WINDOW = 1  # candidate cells: maxima of this odd window; 1 = every cell


def check_peak_window(peak_window: int) -> None:
    """Raise ValueError unless ``peak_window`` is an odd number >= 1 (a max-pool window centred on a cell)."""
    if peak_window < 1 or peak_window % 2 == 0:
        raise ValueError(f"peak_window must be an odd number >= 1, got {peak_window}")


@dataclass
class Decoding:
    """How detections are decoded: NMS threshold and candidate cells (``val.decoding``, val-onnx's ``decoding``,
    ``planning/agents/gates.py``'s ``GATE_DECODING``)."""

    nms_iou: float = NMS_IOU  # (float) class-wise NMS IoU threshold
    peak_window: int = PEAK_WINDOW  # (int) candidate cells are the maxima of this odd window; 1 = every cell, 3 = CenterNet's peaks

    def __post_init__(self) -> None:
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        check_peak_window(self.peak_window)

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`postprocess` and :func:`decode_detections`."""
        return asdict(self)


@dataclass
class Prediction:
    """Predictions for one image: boxes (N,4) x1,y1,x2,y2 pixels, scores (N,), labels (N,), seg (H,W)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    seg: torch.Tensor

    def plot(self, image: np.ndarray, class_map, alpha: float = 0.45) -> np.ndarray:
        """The image (HxWx3 uint8 RGB) with the segmentation overlaid and the boxes drawn."""
        from drivestack.perception.visualize import draw_boxes, overlay_mask

        canvas = overlay_mask(image, self.seg.cpu().numpy(), class_map, alpha)
        return draw_boxes(canvas, self.boxes.cpu().numpy(), self.labels.cpu().numpy(), class_map,
                          self.scores.cpu().numpy())  # fmt: skip


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def window_max(x: torch.Tensor, window: int) -> torch.Tensor:
    """The maximum over each cell's ``window`` x ``window`` neighbourhood of a (B,C,h,w) map, cells outside the
    map left out: what ``F.max_pool2d(x, window, stride=1, padding=window // 2)`` gives, bit for bit, as a
    running maximum of shifted slices along each axis in turn (several times faster on the CPU for the
    few-channel heatmaps decoded each frame of a drive)."""
    out = x
    for dim in (-1, -2):
        cols, n = out.clone(), out.shape[dim]
        for shift in range(1, min(window // 2, n - 1) + 1):
            torch.maximum(cols.narrow(dim, shift, n - shift), out.narrow(dim, 0, n - shift), out=cols.narrow(dim, shift, n - shift))
            torch.maximum(cols.narrow(dim, 0, n - shift), out.narrow(dim, shift, n - shift), out=cols.narrow(dim, 0, n - shift))
        out = cols
    return out


def decode_detections(
    heatmap: torch.Tensor, box: torch.Tensor, stride: int, score_threshold: float = 0.3, nms_iou: float = NMS_IOU,
    top_k: int = 100, max_detections: int = 50, peak_window: int = PEAK_WINDOW,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:  # fmt: skip
    """heatmap (B,C,h,w) logits, box (B,4,h,w) distances -> per image (boxes, scores, labels).

    Candidates are the cells that are the maximum of their ``peak_window`` x ``peak_window`` neighbourhood
    (odd; 1 = every cell)."""
    if heatmap.shape[0] != box.shape[0] or heatmap.shape[-2:] != box.shape[-2:] or box.shape[1] != 4:
        raise ValueError(f"heatmap {tuple(heatmap.shape)} and box {tuple(box.shape)} do not match (box needs 4 channels)")
    check_peak_window(peak_window)
    scores = heatmap.float().sigmoid()
    if peak_window > 1:
        scores = scores * (window_max(scores, peak_window) == scores)
    batch, classes, h, w = scores.shape
    boxes = cell_boxes(box.float(), stride).flatten(2)  # (B,4,h*w)
    top_scores, top_index = scores.flatten(1).topk(min(top_k, classes * h * w), dim=1)
    results = []
    for b in range(batch):
        keep = top_scores[b] >= score_threshold
        s, index = top_scores[b][keep], top_index[b][keep]
        labels, cells = index // (h * w), index % (h * w)
        bx = boxes[b][:, cells].T
        kept = batched_nms(bx, s, labels, nms_iou)[:max_detections]
        results.append((bx[kept], s[kept], labels[kept]))
    return results


def postprocess(
    outputs: Mapping[str, torch.Tensor | np.ndarray], score_threshold: float = 0.3, nms_iou: float = NMS_IOU,
    max_detections: int = 50, peak_window: int = PEAK_WINDOW,
) -> list[Prediction]:  # fmt: skip
    """Raw outputs (``seg`` (B,K,H,W), ``heatmap`` (B,C,h,w), ``box`` (B,4,h,w)) -> one Prediction per image."""
    seg, heatmap, box = (_tensor(outputs[k]) for k in ("seg", "heatmap", "box"))
    stride = seg.shape[-1] // heatmap.shape[-1]
    detections = decode_detections(heatmap, box, stride, score_threshold, nms_iou, max_detections=max_detections,
                                   peak_window=peak_window)
    classes = seg.argmax(1)
    return [Prediction(b, s, l, classes[i]) for i, (b, s, l) in enumerate(detections)]
