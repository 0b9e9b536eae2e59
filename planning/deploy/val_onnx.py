"""Evaluate exported perception graphs (fp32, fp16, int8) on a split with the same metrics as `val`, to see
what each precision costs in mIoU and mAP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from drivestack.perception.classes import classes_from_meta
from drivestack.perception.data.dataset import DataConfig, DrivingDataset
from drivestack.perception.evaluation import evaluate
from drivestack.perception.postprocess import Decoding
from drivestack.planning.deploy.runtime import EngineConfig, OnnxEngine


@dataclass
class ValOnnxConfig:
    models: list[str] = field(default_factory=lambda: ["runs/export/perception_fp32.onnx", "runs/export/perception_int8.onnx"])  # (list[str]) perception graphs to evaluate
    data: DataConfig = field(default_factory=lambda: DataConfig(root="data/driving"))
    split: str = "test"  # (str) train | val | test
    decoding: Decoding = field(default_factory=Decoding)  # detection decoding, as `val.decoding` of drivestack val
    out: str = "runs/export/val_onnx.json"  # (str) metrics of every model, JSON


class EngineModule:
    """An ONNX perception graph behind the call interface `evaluate` uses (batch 1 per run)."""

    def __init__(self, engine: OnnxEngine):
        self.engine = engine

    def eval(self) -> EngineModule:
        return self

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        outs = [self.engine({"image": image[None].numpy()}) for image in images]
        return {k: torch.from_numpy(np.concatenate([o[k] for o in outs])) for k in outs[0]}


def val_onnx(config: ValOnnxConfig) -> int:
    results = {}
    for path in config.models:
        engine = OnnxEngine(path, EngineConfig(warmup=1), expect={"kind": "perception"})
        classes = classes_from_meta(engine.meta, path)
        dataset = DrivingDataset(config.data.root, config.data.towns(config.split), classes, config.data.camera)
        result = evaluate(EngineModule(engine), dataset, classes, batch_size=8, decoding=config.decoding)
        results[path] = {"precision": engine.meta["precision"], **result.to_dict()}
        print(f"{path}: mIoU {result.miou:.4f}, mAP@0.5 {result.map50:.4f}, mAP@0.5:0.95 {result.map:.4f} ({result.images} images)")
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(json.dumps(results, indent=2))
    return 0
