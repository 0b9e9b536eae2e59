"""The whole driving network: perception + policy in one module, one checkpoint, one ONNX graph.

``forward(image, speed, command, target_point)`` takes a uint8-range RGB frame (B,3,H,W), the ego speed (B,)
in m/s, the RoadOption command (B,) and the target point (B,2) in the ego frame, and returns the perception
outputs (``seg``, ``heatmap``, ``box``) and the policy outputs (``path``, ``target_speed``, ``brake``).

For policy training (:mod:`drivestack.planning.policy.train`) the perception part is frozen (kept in eval mode, no
gradients) and ``forward_batch`` feeds the policy either the perception outputs or, for the privileged
stage, ground truth built by the data loader. The checkpoint holds both parts, so it rebuilds the whole
driving network by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from drivestack.perception.models.multitask import ModelConfig, MultiTaskNet
from drivestack.planning.policy.model import DrivingPolicy, PolicyConfig, perception_to_policy_inputs
from torch import nn

INPUTS = ["image", "speed", "command", "target_point"]  # forward's arguments: the fused ONNX graph's input names


@dataclass
class DrivingModelConfig:
    perception: ModelConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)


class DrivingModel(nn.Module):
    def __init__(self, config: DrivingModelConfig):
        super().__init__()
        self.config = config
        self.perception = MultiTaskNet(config.perception)
        self.policy = DrivingPolicy(config.policy)
        self.perception.requires_grad_(False)
        self.perception.eval()

    def train(self, mode: bool = True) -> DrivingModel:
        """Only the policy trains; the perception part stays in eval mode (frozen batch-norm statistics)."""
        super().train(mode)
        self.perception.eval()
        return self

    def forward(self, image: torch.Tensor, speed: torch.Tensor, command: torch.Tensor, target_point: torch.Tensor) -> dict[str, torch.Tensor]:
        seen = self.perception(image)
        seg, det = perception_to_policy_inputs(seen["seg"], seen["heatmap"])
        return {**seen, **self.policy(seg, det, speed, command, target_point)}

    @torch.no_grad()
    def perceive(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's inputs for a batch of frames: (seg probabilities, detection heatmaps) at 1/4 resolution."""
        seen = self.perception(image)
        return perception_to_policy_inputs(seen["seg"], seen["heatmap"])

    def forward_batch(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training entry: ``inputs`` has ``speed``, ``command``, ``target_point`` and either ``image`` or
        ``seg``/``det`` (privileged inputs, or perception outputs computed beforehand: :mod:`planning.input_cache`)."""
        seg, det = (inputs["seg"], inputs["det"]) if "seg" in inputs else self.perceive(inputs["image"])
        return self.policy(seg, det, inputs["speed"], inputs["command"], inputs["target_point"])

    def compute_loss(self, outputs: dict[str, torch.Tensor], targets: dict) -> dict[str, torch.Tensor]:
        return self.policy.compute_loss(outputs, targets)


class PolicyTraining(nn.Module):
    """Adapter for the task-agnostic trainer: ``forward(inputs)`` -> policy outputs, ``compute_loss``."""

    def __init__(self, model: DrivingModel):
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.forward_batch(inputs)

    def compute_loss(self, outputs: dict[str, torch.Tensor], targets: dict) -> dict[str, torch.Tensor]:
        return self.model.compute_loss(outputs, targets)


def build_driving_model(config: DrivingModelConfig) -> DrivingModel:
    return DrivingModel(config)


def build_policy_training(config: DrivingModelConfig) -> PolicyTraining:
    """The builder stored in policy checkpoints (``planning.driving_model:build_policy_training``)."""
    return PolicyTraining(DrivingModel(config))
