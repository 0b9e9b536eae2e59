"""Export the driving model to ONNX: fused (frame, speed, command, target point -> everything), perception, policy;
fp32 checked for parity on recorded frames, plus fp16 and INT8 (static QDQ, calibrated on recorded frames)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from drivestack.common.io import software_version
from drivestack.perception.models.multitask import IMAGE_MEAN, IMAGE_STD
from drivestack.perception.postprocess import postprocess
from drivestack.planning.agents.learned import load_driving_model
from drivestack.planning.deploy.onnx_io import ExportError, convert_fp16, export_onnx, quantize_int8
from drivestack.planning.policy.driving_model import INPUTS
from drivestack.planning.policy.model import COMMANDS, perception_to_policy_inputs
from drivestack.sim.record.dataset_io import image_path, list_episodes, load_manifest, read_measurements, read_rgb

OUTPUTS = {
    "fused": (INPUTS, ["seg", "heatmap", "box", "path", "target_speed", "brake"]),
    "perception": (["image"], ["seg", "heatmap", "box"]),
    "policy": (["seg", "heatmap", "speed", "command", "target_point"], ["path", "target_speed", "brake"]),
}
ATOL = {"seg": 1e-4, "heatmap": 1e-4, "box": 1e-3, "path": 1e-4, "target_speed": 1e-4, "brake": 1e-4}


@dataclass
class ExportConfig:
    checkpoint: str = "runs/policy/last.pt"  # (str) driving-model checkpoint (from train-policy)
    out: str = "runs/export"  # (str) folder for <target>_<precision>.onnx
    targets: list[Literal["fused", "perception", "policy"]] = field(default_factory=lambda: ["fused", "perception", "policy"])  # (list) graphs to export
    precisions: list[Literal["fp32", "fp16", "int8"]] = field(default_factory=lambda: ["fp32", "int8"])  # (list) fp32 is always made (the others derive from it)
    opset: int = 18  # (int) ONNX opset (>= 18)
    dynamic_batch: bool = False  # (bool) dynamic batch axis instead of batch 1
    data: str = "data/driving"  # (str) recorded dataset: frames for the parity check and INT8 calibration
    camera: str = "front"  # (str) camera of the dataset
    parity_frames: int = 8  # (int) recorded frames compared between PyTorch and ONNX Runtime
    calibration_frames: int = 64  # (int) recorded frames for INT8 calibration

    def __post_init__(self) -> None:
        if self.opset < 18:
            raise ValueError(f"opset must be >= 18, got {self.opset}")


def recorded_inputs(root: str | Path, camera: str, count: int) -> list[tuple[torch.Tensor, ...]]:
    """(image (1,3,H,W) uint8, speed (1,), command (1,), target point (1,2)) of ``count`` frames spread over the
    dataset's episodes."""
    root = Path(root)
    ext = load_manifest(root).format.rgb_format
    frames = []
    for episode in list_episodes(root):
        frames += [(episode, r) for r in read_measurements(episode / "measurements.jsonl")]
    if not frames:
        raise ExportError(f"{root}: no recorded frames for the parity check and calibration")
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int)
    out = []
    for i in picks:
        episode, record = frames[i]
        rgb = read_rgb(image_path(episode, "rgb", camera, record["frame"], ext))
        out.append((torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous(),
                    torch.tensor([record["speed"]], dtype=torch.float32), torch.tensor([record["command"]]),
                    torch.tensor([record["target_point"]], dtype=torch.float32)))  # fmt: skip
    return out


def metadata(kind: str, model, meta: dict, config: ExportConfig, precision: str = "fp32") -> dict:
    """What makes a model file self-describing (the engine checks it against its config)."""
    h, w = meta.get("image_size", [None, None])
    policy = model.policy.config
    return {
        "kind": kind,
        "precision": precision,
        "inputs": OUTPUTS[kind][0],
        "outputs": OUTPUTS[kind][1],
        "image_size": [h, w],
        "input_format": "uint8 RGB, NCHW, 0..255; normalisation is inside the graph",
        "normalization": {"mean": [m * 255 for m in IMAGE_MEAN], "std": [s * 255 for s in IMAGE_STD]},
        "seg_classes": meta.get("seg_classes"),
        "det_classes": meta.get("det_classes"),
        "commands": {c.name: int(c) for c in COMMANDS},
        "target_point": "float32 (B,2): next sparse route-plan point, metres in the ego frame (x forward, y right)",
        "policy": {"num_points": policy.num_points, "point_spacing": policy.point_spacing, "input_size": list(policy.input_size)},
        "software": {"drivestack": software_version(), "torch": torch.__version__},
        "checkpoint": str(config.checkpoint),
    }


class _PerceptionOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.perception = model.perception

    def forward(self, image):
        return self.perception(image)


class _PolicyOnPerception(torch.nn.Module):
    """The policy graph takes the perception graph's outputs (seg logits, heatmap logits) as they are."""

    def __init__(self, model):
        super().__init__()
        self.policy = model.policy

    def forward(self, seg, heatmap, speed, command, target_point):
        return self.policy(*perception_to_policy_inputs(seg, heatmap), speed, command, target_point)


def _target(kind: str, model, frames):
    """The module to export for ``kind`` and its example and parity inputs."""
    if kind == "fused":
        return model, frames[0], frames
    if kind == "perception":
        return _PerceptionOnly(model), (frames[0][0],), [(f[0],) for f in frames]
    with torch.no_grad():
        policy_inputs = []
        for image, *measured in frames:
            seen = model.perception(image)
            policy_inputs.append((seen["seg"], seen["heatmap"], *measured))
    return _PolicyOnPerception(model), policy_inputs[0], policy_inputs


def _same_boxes(path: Path, module, frames) -> float:
    """Largest box-corner difference (px) between PyTorch and ORT after post-processing (inf if counts differ)."""
    from drivestack.planning.deploy.onnx_io import _session

    session = _session(path)
    names = [o.name for o in session.get_outputs()]
    worst = 0.0
    with torch.no_grad():
        for args in frames:
            ort_out = dict(zip(names, session.run(None, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})))
            a, b = postprocess(module(*args))[0], postprocess({k: ort_out[k] for k in ("seg", "heatmap", "box")})[0]
            if len(a.boxes) != len(b.boxes):
                return float("inf")
            if len(a.boxes):
                worst = max(worst, float((a.boxes - b.boxes).abs().max()))
    return worst


def export(config: ExportConfig) -> int:
    model, meta = load_driving_model(config.checkpoint)
    frames = recorded_inputs(config.data, config.camera, max(config.parity_frames, config.calibration_frames))
    parity, calibration = frames[: config.parity_frames], frames[: config.calibration_frames]
    out = Path(config.out)
    for kind in config.targets:
        module, example, parity_inputs = _target(kind, model, parity)
        names_in, names_out = OUTPUTS[kind]
        path = out / f"{kind}_fp32.onnx"
        start = time.perf_counter()
        report = export_onnx(module, example, path, names_in, names_out, metadata(kind, model, meta, config), parity_inputs,
                             {k: ATOL[k] for k in names_out}, config.opset, config.dynamic_batch)  # fmt: skip
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in report.max_abs_diff.items())
        line = f"{path}: {path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s, parity on {report.frames} recorded frames: max |diff| {diffs}"
        if kind in ("fused", "perception"):
            box_diff = _same_boxes(path, module, parity_inputs)
            if box_diff > 0.5:
                path.unlink()
                raise ExportError(f"{path}: boxes after post-processing differ from PyTorch ({box_diff} px); file removed")
            line += f"; boxes after NMS within {box_diff:.2f} px"
        print(line)
        if "fp16" in config.precisions:
            convert_fp16(path, out / f"{kind}_fp16.onnx")
            print(f"{out / f'{kind}_fp16.onnx'}: fp16")
        if "int8" in config.precisions:
            _, _, calib = _target(kind, model, calibration)
            feeds = [{n: a.numpy() for n, a in zip(names_in, args)} for args in calib]
            quantize_int8(path, out / f"{kind}_int8.onnx", feeds)
            print(f"{out / f'{kind}_int8.onnx'}: int8 QDQ, calibrated on {len(feeds)} recorded frames")
    return 0
