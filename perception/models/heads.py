"""Heads on the stride-4 pyramid map: semantic segmentation (full resolution) and CenterNet-style detection.

Both return raw outputs only (logits, distances); decoding, thresholds and NMS are in
``perception.postprocess`` so that the network exports cleanly to ONNX.
"""

from __future__ import annotations

import math

import torch
from drivestack.perception.models.fpn import SeparableConv, upsample_to
from torch import nn


class SegmentationHead(nn.Module):
    """Stride-4 map -> stride-2 (plus a lateral from the stride-2 backbone map) -> class logits upsampled
    bilinearly to the input size. The classifier starts at zero, so the initial loss is ln(num_classes)."""

    def __init__(self, in_channels: int, skip_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.reduce = SeparableConv(in_channels, channels)
        self.skip = nn.Sequential(nn.Conv2d(skip_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.refine = SeparableConv(channels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        skip = self.skip(skip)
        x = self.refine(skip + upsample_to(self.reduce(x), skip, mode="bilinear"))
        return upsample_to(self.classifier(x), image, mode="bilinear")


class DetectionHead(nn.Module):
    """CenterNet-style anchor-free head at one stride: a per-class centre heatmap (logits) and, at every
    cell, the distances (left, top, right, bottom) in pixels from the cell centre to the box edges.

    The heatmap bias starts at the prior ``-log((1 - p) / p)`` (focal-loss init, RetinaNet/FCOS); distances
    are ``stride * exp(raw)``, ``stride`` on each side at init.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, stride: int, prior_prob: float) -> None:
        super().__init__()
        self.stride = stride
        self.heatmap = nn.Sequential(SeparableConv(in_channels, channels), SeparableConv(channels, channels),
                                     nn.Conv2d(channels, num_classes, 1))  # fmt: skip
        self.box = nn.Sequential(SeparableConv(in_channels, channels), SeparableConv(channels, channels),
                                 nn.Conv2d(channels, 4, 1))  # fmt: skip
        nn.init.normal_(self.heatmap[-1].weight, std=0.01)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.normal_(self.box[-1].weight, std=0.01)
        nn.init.zeros_(self.box[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances = self.stride * torch.exp(self.box(x).clamp(max=8.0))
        return self.heatmap(x), distances
