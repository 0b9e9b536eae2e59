"""Package a trained driving model for shipping: weights only (fp16 storage), the fused ONNX graphs, and the
metrics measured on it, into one small folder (``models/`` in the repository)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from drivestack.common.checkpoint import load_checkpoint, save_checkpoint


@dataclass
class PackageConfig:
    checkpoint: str = "runs/policy/last.pt"  # (str) driving-model checkpoint (from train-policy)
    onnx: list[str] = field(default_factory=lambda: ["runs/export/fused_int8.onnx"])  # (list[str]) ONNX files to ship (renamed driving_<name>)
    metrics: list[str] = field(default_factory=list)  # (list[str]) JSON files of measured metrics to ship (val, drive summary, bench)
    out: str = "models"  # (str) folder to write
    name: str = "driving"  # (str) base name of the shipped files


def strip_checkpoint(src: str | Path, dst: str | Path) -> int:
    """Keep what rebuilds the model (spec, weights as fp16, meta, config); drop optimizer and training state."""
    checkpoint = load_checkpoint(src)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    save_checkpoint(dst, {"model": checkpoint["model"], "state_dict": weights, "meta": checkpoint.get("meta", {}),
                          "config": checkpoint.get("config", {}), "epoch": checkpoint.get("epoch"),
                          "metrics": checkpoint.get("metrics", {}), "source": str(src)})  # fmt: skip
    return Path(dst).stat().st_size


def package(config: PackageConfig) -> int:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    size = strip_checkpoint(config.checkpoint, out / f"{config.name}.pt")
    print(f"{out / f'{config.name}.pt'}: {size / 1e6:.1f} MB (weights in fp16, loaded as fp32)")
    for path in map(Path, config.onnx):
        target = out / f"{config.name}_{path.name}"
        shutil.copyfile(path, target)
        print(f"{target}: {target.stat().st_size / 1e6:.1f} MB")
    metrics = {Path(m).parent.name + "/" + Path(m).name: json.loads(Path(m).read_text()) for m in config.metrics}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"{out}: {total / 1e6:.1f} MB in all")
    return 0

