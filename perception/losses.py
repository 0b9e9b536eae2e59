"""Losses of the multi-task network and the dense detection targets they compare against.

- segmentation: cross-entropy (``ignore_index`` skipped) plus an optional soft Dice term over the classes
  present in the batch (helps the small classes: pedestrians, lights, road lines);
- detection heatmap: CenterNet's penalty-reduced focal loss against per-class Gaussians (TTFNet's elliptic
  Gaussians, sigma = alpha * box side / 6), normalised by the number of objects;
- detection boxes: GIoU loss at the cells around each object's centre, weighted by its Gaussian (TTFNet).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from drivestack.perception.classes import IGNORE_INDEX
from torchvision.ops import generalized_box_iou_loss


def segmentation_ce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels. logits (B,K,H,W), mask (B,H,W) class ids or IGNORE_INDEX."""
    if logits.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"logits are {tuple(logits.shape[-2:])} but the mask is {tuple(mask.shape[-2:])}")
    return F.cross_entropy(logits, mask.long(), ignore_index=IGNORE_INDEX)


def soft_dice(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in ``mask`` (ignored pixels left out)."""
    num_classes = logits.shape[1]
    valid = (mask != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(mask.long().clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (total + eps)
    return 1 - dice[present].mean() if present.any() else logits.sum() * 0


def heatmap_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of peaks (target == 1)."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must match")
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    pos = target.eq(1).float()
    pos_loss = -(pos * (1 - p).pow(alpha) * log_p).sum()
    neg_loss = -((1 - pos) * (1 - target).pow(beta) * p.pow(alpha) * log_not_p).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def heatmap_prior_loss(prior: float, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> float:
    """Value of :func:`heatmap_focal_loss` when every cell predicts probability ``prior`` (the init check)."""
    pos = target.eq(1).float()
    pos_loss = pos.sum() * (1 - prior) ** alpha * -math.log(prior)
    neg_loss = ((1 - pos) * (1 - target).pow(beta)).sum() * prior**alpha * -math.log(1 - prior)
    return float((pos_loss + neg_loss) / pos.sum().clamp(min=1))


def detection_targets(
    boxes: list[torch.Tensor], labels: list[torch.Tensor], num_classes: int, size: tuple[int, int], stride: int,
    alpha: float = 0.54,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Dense targets at one stride for a batch.

    boxes[i]: (N,4) x1,y1,x2,y2 pixels; labels[i]: (N,) class ids; size: (h, w) of the output grid.
    Returns heatmap (B,C,h,w) with a Gaussian peak of exactly 1 at the cell holding each box centre;
    box (B,4,h,w): the box each cell regresses; weight (B,h,w): its Gaussian value inside the object's
    region (cells where the Gaussian > 0.5, and always the centre cell), 0 elsewhere; where regions
    overlap, the smaller box wins.
    """
    h, w = size
    device = boxes[0].device if boxes else torch.device("cpu")
    ys = torch.arange(h, device=device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, w)
    heatmaps, box_targets, weights = [], [], []
    for b, lab in zip(boxes, labels):
        heat = torch.zeros(num_classes, h * w, device=device)
        box_t = torch.zeros(4, h, w, device=device)
        weight = torch.zeros(h, w, device=device)
        if len(b):
            b = b.float()
            bw, bh = (b[:, 2] - b[:, 0]).clamp(min=1), (b[:, 3] - b[:, 1]).clamp(min=1)
            cx = ((b[:, 0] + b[:, 2]) / 2 / stride).floor().clamp(0, w - 1).view(-1, 1, 1)
            cy = ((b[:, 1] + b[:, 3]) / 2 / stride).floor().clamp(0, h - 1).view(-1, 1, 1)
            sx = (alpha * bw / 6 / stride).clamp(min=1e-3).view(-1, 1, 1)
            sy = (alpha * bh / 6 / stride).clamp(min=1e-3).view(-1, 1, 1)
            g = torch.exp(-((xs - cx) ** 2 / (2 * sx**2) + (ys - cy) ** 2 / (2 * sy**2)))  # (N,h,w)
            heat.scatter_reduce_(0, lab.long().view(-1, 1).expand(-1, h * w), g.view(len(b), -1), "amax")
            region = (g > 0.5) | ((xs == cx) & (ys == cy))
            area = (bw * bh).view(-1, 1, 1).expand_as(g)
            owner = torch.where(region, area, torch.full_like(area, float("inf"))).argmin(0)  # (h,w)
            owned = region.any(0)
            box_t = b[owner].permute(2, 0, 1)
            weight = torch.where(owned, g.gather(0, owner.unsqueeze(0)).squeeze(0), weight)
        heatmaps.append(heat.view(num_classes, h, w))
        box_targets.append(box_t)
        weights.append(weight)
    return torch.stack(heatmaps), torch.stack(box_targets), torch.stack(weights)


def cell_boxes(distances: torch.Tensor, stride: int) -> torch.Tensor:
    """(B,4,h,w) left/top/right/bottom distances -> (B,4,h,w) x1,y1,x2,y2 around each cell centre."""
    h, w = distances.shape[-2:]
    cy = (torch.arange(h, device=distances.device, dtype=distances.dtype).view(h, 1) + 0.5) * stride
    cx = (torch.arange(w, device=distances.device, dtype=distances.dtype).view(1, w) + 0.5) * stride
    left, top, right, bottom = distances.unbind(1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], 1)


def box_giou_loss(distances: torch.Tensor, box_target: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """Weighted mean GIoU loss of the predicted boxes at cells with weight > 0."""
    keep = weight > 0
    if not keep.any():
        return distances.sum() * 0
    pred = cell_boxes(distances, stride).permute(0, 2, 3, 1)[keep]
    target = box_target.permute(0, 2, 3, 1)[keep]
    w = weight[keep]
    return (generalized_box_iou_loss(pred, target, reduction="none") * w).sum() / w.sum()
