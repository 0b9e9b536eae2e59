"""Torchvision classification trunks cut into stages at strides 2, 4, 8, 16 and 32.

Trained from scratch by default; ``weights`` names a local state-dict file of the whole torchvision
classification model (e.g. ``mobilenet_v3_large-8738ca79.pth`` copied by hand), loaded strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import models

BACKBONES = ("mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "regnet_x_400mf", "regnet_y_400mf")
STRIDES = (2, 4, 8, 16, 32)


def _layers(name: str, width_mult: float) -> tuple[nn.Module, list[nn.Module]]:
    """(full torchvision model, its feature layers in order)."""
    if name.startswith("mobilenet_v3"):
        model = getattr(models, name)(weights=None, width_mult=width_mult)
        return model, list(model.features)
    if width_mult != 1.0:
        raise ValueError(f"width_mult is only supported by mobilenet_v3 backbones, got {width_mult} for {name}")
    if name == "resnet18":
        model = models.resnet18(weights=None)
        stem = nn.Sequential(model.conv1, model.bn1, model.relu)
        return model, [stem, model.maxpool, model.layer1, model.layer2, model.layer3, model.layer4]
    if name.startswith("regnet"):
        model = getattr(models, name)(weights=None)
        return model, [model.stem, *model.trunk_output]
    raise ValueError(f"backbone must be one of {BACKBONES}, got '{name}'")


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``model`` strictly; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not match the backbone: {e}") from None


class Backbone(nn.Module):
    """Runs the stages in order and returns one feature map per stride in ``STRIDES``."""

    def __init__(self, name: str = "mobilenet_v3_large", width_mult: float = 1.0, weights: str | None = None) -> None:
        super().__init__()
        model, layers = _layers(name, width_mult)
        if weights:
            load_weights(model, weights)
        self.stages = nn.ModuleList(_split_by_stride(layers))
        self.eval()  # probe without touching BatchNorm statistics
        with torch.no_grad():
            self.channels = [f.shape[1] for f in self.forward(torch.zeros(1, 3, 64, 64))]
        self.train()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def _split_by_stride(layers: list[nn.Module]) -> list[nn.Sequential]:
    """Group consecutive layers so that each group ends at the last layer of one stride in ``STRIDES``."""
    size = 64
    x = torch.zeros(1, 3, size, size)
    ends = {}
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.eval()
            x = layer(x)
            ends[size // x.shape[-1]] = i
    missing = [s for s in STRIDES if s not in ends]
    if missing:
        raise ValueError(f"backbone has no layer at strides {missing}")
    stages, start = [], 0
    for stride in STRIDES:
        stages.append(nn.Sequential(*layers[start : ends[stride] + 1]))
        start = ends[stride] + 1
    return stages
