"""The driving policy: perception outputs + speed + command -> path waypoints, target speed, brake.

Input is what the perception network produces for the current frame, at 1/4 resolution: segmentation
class probabilities (softmax of ``seg``, average-pooled) and detection centre heatmaps (sigmoid of
``heatmap``, one channel per detection class, so traffic-light state is an input). The same tensors can be
built from ground truth (one-hot classes, Gaussian centre heatmaps), which is how training starts
(privileged, as in Learning by Cheating) before it finishes on the perception network's own predictions.

A small CNN keeps the spatial layout (flattened, not pooled), joins an embedding of the ego speed and the
target point (the next point of the sparse route plan in the ego frame, as TransFuser and TCP take it:
:mod:`sim.route_plan`), and one head branch per high-level command (CIL-style) predicts ``num_points`` path
points in the ego frame at fixed arc lengths along the way to drive, a target speed, and a brake logit; the
branch of the given command is selected inside the network (so it exports to ONNX as one graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from drivestack.sim.conventions import RoadOption
from torch import nn

COMMANDS = (RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT, RoadOption.LANEFOLLOW,
            RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT)  # fmt: skip


@dataclass
class PolicyConfig:
    """Architecture and loss weights of the driving policy."""

    num_seg_classes: int = 10  # (int) segmentation channels of the input
    num_det_classes: int = 5  # (int) detection heatmap channels of the input
    input_size: tuple[int, int] = (40, 80)  # (int, int) input height, width (perception output / 4)
    channels: list[int] = field(default_factory=lambda: [32, 64, 96, 128])  # (list[int]) conv stages, stride 2 each
    hidden: int = 256  # (int) width of the fused feature
    num_points: int = 5  # (int) path points
    point_spacing: float = 2.0  # (float) metres between path points along the path (first at one spacing)
    speed_scale: float = 10.0  # (float) m/s that maps to 1.0 for speed inputs and targets
    speed_input: bool = True  # (bool) feed the ego speed to the network (false avoids the inertia problem: docs/policy.md)
    target_scale: float = 20.0  # (float) metres that map to 1.0 for the target-point input
    measurement_channels: int = 64  # (int) width of the speed + target-point embedding
    path_weight: float = 1.0  # (float) weight of the L1 path loss (metres)
    speed_weight: float = 1.0  # (float) weight of the L1 target-speed loss (scaled)
    brake_weight: float = 0.5  # (float) weight of the brake BCE
    brake_below: float = 0.3  # (float) target speeds below this (m/s) are brake labels
    standing_below: float = 0.5  # (float) ego speeds below this (m/s) count as standing (for start_weight)
    start_weight: float = 0.0  # (float) loss weight of "standing, expert starts" frames; 0 = balance them against "standing, expert waits" (docs/policy.md)
    slowing_margin: float = 1.0  # (float) m/s; a moving frame whose expert target speed is this much below the ego speed is a slowing frame
    slow_weight: float = 1.0  # (float) loss weight of slowing frames (rare: red lights and traffic approached at speed; docs/policy.md)
    recovery_offset: float = 1.0  # (float) metres; a frame whose label path starts more than this to the side is a recovery frame (the car is off its lane)
    recovery_weight: float = 1.0  # (float) path-loss weight of recovery frames (rare: DAgger states after a wide turn; docs/policy.md)

    def __post_init__(self) -> None:
        if self.start_weight < 0:
            raise ValueError(f"start_weight must be >= 0 (0 = balanced), got {self.start_weight}")
        if self.slow_weight <= 0:
            raise ValueError(f"slow_weight must be > 0, got {self.slow_weight}")
        if self.recovery_weight <= 0:
            raise ValueError(f"recovery_weight must be > 0, got {self.recovery_weight}")
        if self.recovery_offset < 0:
            raise ValueError(f"recovery_offset must be >= 0 metres, got {self.recovery_offset}")


def command_index(command: torch.Tensor) -> torch.Tensor:
    """RoadOption values -> branch index 0..5 (VOID counts as LANEFOLLOW)."""
    command = torch.where(command < 1, torch.full_like(command, int(RoadOption.LANEFOLLOW)), command)
    return (command - 1).clamp(0, len(COMMANDS) - 1).long()


class DrivingPolicy(nn.Module):
    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        c = config
        layers, cin = [], c.num_seg_classes + c.num_det_classes
        h, w = c.input_size
        for cout in c.channels:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin, h, w = cout, (h + 1) // 2, (w + 1) // 2
        self.encoder = nn.Sequential(*layers)
        self.visual = nn.Sequential(nn.Flatten(), nn.Linear(cin * h * w, c.hidden), nn.ReLU(inplace=True))
        m = c.measurement_channels
        self.measurements = nn.Sequential(nn.Linear(2 + int(c.speed_input), m), nn.ReLU(inplace=True), nn.Linear(m, m),
                                          nn.ReLU(inplace=True))  # fmt: skip
        self.fuse = nn.Sequential(nn.Linear(c.hidden + m, c.hidden), nn.ReLU(inplace=True))
        self.outputs_per_branch = 2 * c.num_points + 2
        self.branches = nn.Linear(c.hidden, len(COMMANDS) * self.outputs_per_branch)

    def forward(self, seg_probs: torch.Tensor, det_probs: torch.Tensor, speed: torch.Tensor, command: torch.Tensor,
                target_point: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """seg_probs (B,C,h,w), det_probs (B,D,h,w) in 0..1, speed (B,) m/s, command (B,) RoadOption values,
        target_point (B,2) metres in the ego frame (x forward, y right)."""
        c = self.config
        x = self.encoder(torch.cat([seg_probs, det_probs], dim=1))
        measured = [target_point.float().view(-1, 2) / c.target_scale]
        if c.speed_input:
            measured.insert(0, speed.float().view(-1, 1) / c.speed_scale)
        feature = self.fuse(torch.cat([self.visual(x), self.measurements(torch.cat(measured, dim=1))], dim=1))
        out = self.branches(feature).view(-1, len(COMMANDS), self.outputs_per_branch)
        index = command_index(command).view(-1, 1, 1).expand(-1, 1, self.outputs_per_branch)
        chosen = out.gather(1, index).squeeze(1)
        path = chosen[:, : 2 * c.num_points].view(-1, c.num_points, 2)
        return {
            "path": path * c.point_spacing,  # (B,K,2) metres, ego frame (x forward, y right)
            "target_speed": F.softplus(chosen[:, -2]) * c.speed_scale,  # (B,) m/s
            "brake": chosen[:, -1],  # (B,) logit
        }

    def compute_loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """targets: ``path`` (B,K,2), ``path_valid`` (B,K) bool, ``target_speed`` (B,) m/s, optional ``weight`` (B,)
        per-sample weights of the speed and brake terms, ``speed_valid`` (B,) bool, the frames that have speed and
        brake labels (all by default), and ``path_weight`` (B,) of the path term (each term is normalised by its
        unweighted count of labelled frames, so weights above 1 also raise that term against the others)."""
        c = self.config
        valid = targets["path_valid"].float().unsqueeze(-1)
        path_weight = targets.get("path_weight", torch.ones_like(targets["target_speed"])).view(-1, 1, 1)
        path = (path_weight * torch.abs(outputs["path"] - targets["path"]) * valid).sum() / valid.sum().clamp(min=1.0) / 2
        labelled = targets.get("speed_valid", torch.ones_like(targets["target_speed"], dtype=torch.bool)).float()
        weight = targets.get("weight", torch.ones_like(targets["target_speed"])) * labelled
        count = labelled.sum().clamp(min=1.0)
        speed = (weight * torch.abs(outputs["target_speed"] - targets["target_speed"])).sum() / count / c.speed_scale
        brake_label = (targets["target_speed"] < c.brake_below).float()
        brake = F.binary_cross_entropy_with_logits(outputs["brake"], brake_label, weight=weight, reduction="sum") / count
        return {"path": c.path_weight * path, "speed": c.speed_weight * speed, "brake": c.brake_weight * brake}


def is_start(speed: torch.Tensor, target_speed: torch.Tensor, config: PolicyConfig) -> torch.Tensor:
    """Frames where the ego stands and the expert drives off: rare in expert data (it leaves at once), so they
    get ``start_weight``."""
    return (speed < config.standing_below) & (target_speed >= config.brake_below)


def is_wait(speed: torch.Tensor, target_speed: torch.Tensor, config: PolicyConfig) -> torch.Tensor:
    """Frames where the ego stands and the expert keeps it standing (red light, traffic ahead)."""
    return (speed < config.standing_below) & (target_speed < config.brake_below)


def is_slowing(speed: torch.Tensor, target_speed: torch.Tensor, config: PolicyConfig) -> torch.Tensor:
    """Frames where the ego moves and the expert asks for clearly less speed (a red light or traffic ahead):
    about 4 % of the frames, where a policy that copies its own speed goes wrong; they get ``slow_weight``."""
    return (speed >= config.standing_below) & (target_speed < speed - config.slowing_margin)


def is_recovery(path: torch.Tensor, valid: torch.Tensor, config: PolicyConfig) -> torch.Tensor:
    """Frames whose label path (B,K,2) starts more than ``recovery_offset`` to the side: the car is off its
    lane and the label leads back (DAgger states, noise-injected steering)."""
    return valid[:, 0] & (path[:, 0, 1].abs() > config.recovery_offset)


def build_policy(config: PolicyConfig) -> DrivingPolicy:
    return DrivingPolicy(config)


def channel_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 written as exp / sum: the same values within float rounding, but it exports to
    element-wise ONNX ops; ONNX Runtime's CPU Softmax on a non-last axis transposes the tensor and took ~4x
    longer on (1,10,160,320) logits, a third of the fused graph's time."""
    e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def perception_to_policy_inputs(seg_logits: torch.Tensor, heatmap_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Perception outputs (full-resolution seg logits, 1/4 heatmap logits) -> policy inputs at 1/4 resolution."""
    size = heatmap_logits.shape[-2:]
    seg = F.adaptive_avg_pool2d(channel_softmax(seg_logits), size)
    return seg, torch.sigmoid(heatmap_logits)


def ground_truth_to_policy_inputs(mask: torch.Tensor, heatmap: torch.Tensor, num_seg_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Privileged inputs: class mask (B,H,W; ignore -> no class) one-hot and pooled, GT centre heatmaps (B,D,h,w)."""
    onehot = F.one_hot(mask.long().clamp(max=num_seg_classes), num_seg_classes + 1)[..., :num_seg_classes]
    seg = F.adaptive_avg_pool2d(onehot.permute(0, 3, 1, 2).float(), heatmap.shape[-2:])
    return seg, heatmap
