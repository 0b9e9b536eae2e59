"""The multi-task perception network: backbone -> feature pyramid -> segmentation + detection heads.

Like torchvision's FCOS the model is composed of parts with defaults and built by :func:`build_multitask`;
like nanoGPT one :class:`ModelConfig` configures it and a checkpoint stores that config, so
``drivestack.common.checkpoint.load_model(path)`` rebuilds the model by itself.

``forward(images)`` takes uint8-range images (B,3,H,W), RGB, uint8 or float, H and W multiples of 32,
normalises them inside the network (so an exported ONNX graph takes raw frames) and returns the same dict
in training and evaluation:

- ``seg``: (B, num_seg_classes, H, W) logits;
- ``heatmap``: (B, num_det_classes, H/4, W/4) centre logits;
- ``box``: (B, 4, H/4, W/4) distances in pixels from each cell centre to the left, top, right, bottom edges.

``compute_loss(outputs, targets)`` returns a dict of named, already weighted losses (sum them to train).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from drivestack.perception.losses import box_giou_loss, detection_targets, heatmap_focal_loss, segmentation_ce, soft_dice
from drivestack.perception.models.backbone import BACKBONES, Backbone
from drivestack.perception.models.fpn import FeaturePyramid
from drivestack.perception.models.heads import DetectionHead, SegmentationHead
from torch import nn

DET_STRIDE = 4
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as torchvision's weights expect
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelConfig:
    """Architecture and loss weights of the multi-task network."""

    backbone: str = "mobilenet_v3_large"  # (str) mobilenet_v3_large | mobilenet_v3_small | resnet18 | regnet_x_400mf | regnet_y_400mf
    width_mult: float = 1.0  # (float) channel multiplier (mobilenet_v3 only)
    weights: str | None = None  # (str) local file of torchvision classification weights; null = from scratch
    fpn_channels: int = 64  # (int) channels of the feature pyramid
    seg_channels: int = 32  # (int) channels of the segmentation decoder
    det_channels: int = 64  # (int) channels of the detection head branches
    num_seg_classes: int = 10  # (int) segmentation classes (set from the class map)
    num_det_classes: int = 5  # (int) detection classes (set from the class map)
    prior_prob: float = 0.01  # (float) initial heatmap probability (focal-loss prior)
    gaussian_alpha: float = 0.54  # (float) heatmap Gaussian sigma = alpha * box side / 6 (TTFNet)
    seg_weight: float = 1.0  # (float) weight of the segmentation cross-entropy
    dice_weight: float = 0.5  # (float) weight of the soft Dice segmentation term (0 = off)
    heatmap_weight: float = 1.0  # (float) weight of the heatmap focal loss
    box_weight: float = 2.0  # (float) weight of the GIoU box loss

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {list(BACKBONES)}, got '{self.backbone}'")
        if not 0.0 < self.prior_prob < 1.0:
            raise ValueError(f"prior_prob must be in (0, 1), got {self.prior_prob}")
        for name in ("fpn_channels", "seg_channels", "det_channels", "num_seg_classes", "num_det_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class MultiTaskNet(nn.Module):
    """Shared backbone and pyramid with a segmentation head and a detection head."""

    def __init__(
        self, config: ModelConfig, backbone: nn.Module | None = None, neck: nn.Module | None = None,
        seg_head: nn.Module | None = None, det_head: nn.Module | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.config = config
        self.backbone = backbone or Backbone(config.backbone, config.width_mult, config.weights)
        channels = self.backbone.channels
        self.neck = neck or FeaturePyramid(channels[1:], config.fpn_channels)
        self.seg_head = seg_head or SegmentationHead(config.fpn_channels, channels[0], config.seg_channels,
                                                     config.num_seg_classes)  # fmt: skip
        self.det_head = det_head or DetectionHead(config.fpn_channels, config.det_channels, config.num_det_classes,
                                                  DET_STRIDE, config.prior_prob)  # fmt: skip
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images.float() - self.mean) / self.std
        features = self.backbone(x)
        p2 = self.neck(features[1:])
        heatmap, box = self.det_head(p2)
        return {"seg": self.seg_head(p2, features[0], images), "heatmap": heatmap, "box": box}

    def compute_loss(self, outputs: dict[str, torch.Tensor], targets: dict) -> dict[str, torch.Tensor]:
        """targets: ``mask`` (B,H,W) class ids, ``boxes`` list of (N,4) pixels, ``labels`` list of (N,)."""
        c = self.config
        heatmap_t, box_t, weight = detection_targets(
            targets["boxes"], targets["labels"], c.num_det_classes, tuple(outputs["heatmap"].shape[-2:]),
            DET_STRIDE, c.gaussian_alpha,
        )  # fmt: skip
        losses = {
            "seg": c.seg_weight * segmentation_ce(outputs["seg"], targets["mask"]),
            "heatmap": c.heatmap_weight * heatmap_focal_loss(outputs["heatmap"], heatmap_t),
            "box": c.box_weight * box_giou_loss(outputs["box"], box_t, weight, DET_STRIDE),
        }
        if c.dice_weight:
            losses["dice"] = c.dice_weight * soft_dice(outputs["seg"], targets["mask"])
        return losses


def build_multitask(config: ModelConfig) -> MultiTaskNet:
    """The builder a checkpoint names to rebuild the model (``perception.models.multitask:build_multitask``)."""
    return MultiTaskNet(config)
