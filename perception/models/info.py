"""Parameters, GFLOPs (torch FlopCounterMode) and CPU latency of the perception network at given sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from drivestack.perception.evaluation import measure_latency
from drivestack.perception.models.multitask import ModelConfig, build_multitask
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class ModelInfoConfig:
    """``drivestack model-info``."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the network (as in configs/perception.yaml)
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(320, 160), (640, 384)])  # (px) width, height
    latency_runs: int = 20  # (int) timed forward passes per size (batch 1, CPU); 0 = skip


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    parts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    return {"total": sum(p.numel() for p in model.parameters()), **parts}


def gflops(model: torch.nn.Module, width: int, height: int) -> float:
    """Forward GFLOPs (multiply-add = 2 FLOPs) for one image."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, height, width, dtype=torch.uint8))
    return counter.get_total_flops() / 1e9


def model_info(config: ModelInfoConfig) -> int:
    model = build_multitask(config.model).eval()
    params = count_parameters(model)
    print(f"{config.model.backbone} (width {config.model.width_mult}): "
          + ", ".join(f"{k} {v / 1e6:.3f} M" for k, v in params.items()) + " parameters")  # fmt: skip
    print(f"{'input':>10}{'GFLOPs':>9}{'latency ms (CPU, b1, ' + str(torch.get_num_threads()) + ' threads)':>40}")
    for width, height in config.sizes:
        latency = measure_latency(model, (height, width), 1, config.latency_runs) if config.latency_runs else float("nan")
        print(f"{width:>5}x{height:<4}{gflops(model, width, height):9.3f}{latency:40.2f}")
    return 0
