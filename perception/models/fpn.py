"""Top-down feature pyramid fused down to stride 4: the one map both heads read."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeparableConv(nn.Sequential):
    """3x3 depthwise conv + 1x1 pointwise conv, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def upsample_to(x: torch.Tensor, like: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Resize ``x`` to the spatial size of ``like``."""
    if mode == "nearest":
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")
    return F.interpolate(x, size=like.shape[-2:], mode=mode, align_corners=False)


class FeaturePyramid(nn.Module):
    """FPN top-down path over strides 4..32 (1x1 laterals, nearest upsampling, sums), then a 3x3 smoothing
    separable conv on the stride-4 level, which is returned."""

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels)) for c in in_channels
        )
        self.smooth = SeparableConv(channels, channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.laterals[-1](features[-1])
        for lateral, feature in zip(self.laterals[-2::-1], features[-2::-1]):
            skip = lateral(feature)
            x = skip + upsample_to(x, skip)
        return self.smooth(x)
