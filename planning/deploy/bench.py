"""Closed-loop latency per stage (preprocess, perception, policy, post-processing, control) for PyTorch eager
and ONNX Runtime variants, on recorded frames; table, JSON and a latency histogram. With ``peers``, the fused
graph beside ultralytics models instead (:mod:`drivestack.planning.deploy.peers`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from drivestack.perception.postprocess import postprocess
from drivestack.planning.agents.learned import load_driving_model
from drivestack.planning.control import ControllerConfig, WaypointController
from drivestack.planning.deploy.export import recorded_inputs
from drivestack.planning.deploy.latency import histogram, summarize
from drivestack.planning.deploy.peers import PEERS, bench_peers
from drivestack.planning.deploy.runtime import EngineConfig, OnnxEngine, runnable_precisions
from drivestack.planning.policy.model import perception_to_policy_inputs

STAGES = ("preprocess", "perception", "policy", "postprocess", "control")


@dataclass
class BenchConfig:
    checkpoint: str = "runs/policy/last.pt"  # (str) driving-model checkpoint (PyTorch eager)
    onnx_dir: str = "runs/export"  # (str) folder with <target>_<precision>.onnx from `drivestack export`
    data: str = "data/driving"  # (str) recorded dataset: the frames fed to the loop
    camera: str = "front"  # (str) camera of the dataset
    frames: int = 200  # (int) timed frames per variant
    warmup: int = 20  # (int) untimed frames first
    threads: int = 0  # (int) CPU threads for torch and ONNX Runtime; 0 = their defaults
    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8", "fp16"])  # (list[str]) ORT variants to run when their files exist (fp16 only on a GPU)
    peers: list[str] = field(default_factory=list)  # (list[str]) ultralytics models (yolo11n, yolo11n-seg, yolo26n) timed beside the fused graph instead of the loop; needs pip install drivestack[bench]
    out: str = "runs/bench"  # (str) folder for bench.json and latency.png (peers: peers.json, peers.md, peers.png)

    def __post_init__(self) -> None:
        unknown = [p for p in self.peers if p not in PEERS]
        if unknown:
            raise ValueError(f"peers must be among {list(PEERS)}, got {unknown}")


class _Loop:
    """One variant of the loop: ``step(frame, speed, command, target_point)`` returns per-stage milliseconds and the total."""

    def __init__(self, name: str, perceive, plan, fused):
        self.name, self.perceive, self.plan, self.fused = name, perceive, plan, fused
        self.controller = WaypointController(ControllerConfig(), 0.05)

    def step(self, frame: np.ndarray, speed: float, command: int, target_point: np.ndarray) -> dict[str, float]:
        t = [time.perf_counter()]
        image = np.ascontiguousarray(frame.transpose(2, 0, 1))[None]
        t.append(time.perf_counter())
        seen = self.perceive(image)
        t.append(time.perf_counter())
        out = self.plan(seen, speed, command, target_point)
        t.append(time.perf_counter())
        postprocess({k: seen[k] for k in ("seg", "heatmap", "box")})
        t.append(time.perf_counter())
        self.controller.control(np.asarray(out["path"][0], np.float64), float(out["target_speed"][0]), speed)
        t.append(time.perf_counter())
        ms = {s: 1e3 * (b - a) for s, a, b in zip(STAGES, t[:-1], t[1:])}
        ms["loop"] = 1e3 * (t[-1] - t[0])
        f0 = time.perf_counter()
        self.fused(image, speed, command, target_point)
        ms["fused_model"] = 1e3 * (time.perf_counter() - f0)
        return ms


def torch_loop(checkpoint: str) -> _Loop:
    model, _ = load_driving_model(checkpoint)

    @torch.no_grad()
    def perceive(image):
        return model.perception(torch.from_numpy(image))

    @torch.no_grad()
    def plan(seen, speed, command, target_point):
        seg, det = perception_to_policy_inputs(seen["seg"], seen["heatmap"])
        out = model.policy(seg, det, torch.tensor([speed]), torch.tensor([command]), torch.from_numpy(target_point))
        return {k: v.numpy() for k, v in out.items()}

    @torch.no_grad()
    def fused(image, speed, command, target_point):
        return model(torch.from_numpy(image), torch.tensor([speed]), torch.tensor([command]), torch.from_numpy(target_point))

    return _Loop("pytorch eager", perceive, plan, fused)


def ort_loop(onnx_dir: Path, precision: str, engine: EngineConfig) -> _Loop | None:
    """The loop on ONNX Runtime: the perception and policy graphs per stage, the fused graph for the total."""
    paths = {k: onnx_dir / f"{k}_{precision}.onnx" for k in ("perception", "policy", "fused")}
    if not all(p.exists() for p in paths.values()):
        return None
    perception, policy, fused = (OnnxEngine(p, engine) for p in paths.values())

    def measured(speed, command, target_point):
        return {"speed": np.array([speed], np.float32), "command": np.array([command], np.int64), "target_point": target_point}

    def plan(seen, speed, command, target_point):
        return policy({"seg": seen["seg"], "heatmap": seen["heatmap"], **measured(speed, command, target_point)})

    def fused_run(image, speed, command, target_point):
        return fused({"image": image, **measured(speed, command, target_point)})

    return _Loop(f"onnxruntime {precision} ({perception.provider.removesuffix('ExecutionProvider')})",
                 lambda image: perception({"image": image}), plan, fused_run)  # fmt: skip


def measure(loop: _Loop, frames: list, count: int, warmup: int) -> dict[str, np.ndarray]:
    """Milliseconds per frame and stage over ``count`` frames (cycling through ``frames``)."""
    for i in range(warmup):
        loop.step(*frames[i % len(frames)])
    rows = [loop.step(*frames[i % len(frames)]) for i in range(count)]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def format_table(results: dict[str, dict]) -> str:
    cols = [*STAGES, "loop", "fused_model"]
    lines = [f"{'variant':<28}" + "".join(f"{c:>14}" for c in cols) + f"{'loop fps':>10}",
             f"{'(p50 / p99 ms)':<28}"]  # fmt: skip
    for name, stats in results.items():
        cells = "".join(f"{stats[c]['p50']:>7.2f}/{stats[c]['p99']:<6.2f}" for c in cols)
        lines.append(f"{name:<28}{cells}{1000.0 / stats['loop']['p50']:>10.1f}")
    return "\n".join(lines)


def bench(config: BenchConfig) -> int:
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.peers:
        return bench_peers(config)
    frames = [(image[0].permute(1, 2, 0).numpy(), float(speed), int(command), target.numpy())
              for image, speed, command, target in recorded_inputs(config.data, config.camera, 32)]  # fmt: skip
    engine = EngineConfig(intra_op_threads=config.threads, warmup=3)
    loops = [torch_loop(config.checkpoint)]
    for precision in runnable_precisions(config.precisions):
        loop = ort_loop(Path(config.onnx_dir), precision, engine)
        if loop is not None:
            loops.append(loop)
    raw = {loop.name: measure(loop, frames, config.frames, config.warmup) for loop in loops}
    results = {name: summarize(ms) for name, ms in raw.items()}
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"frames": config.frames, "threads": config.threads, "results": results}, indent=2))
    histogram({name: ms["loop"] for name, ms in raw.items()}, out / "latency.png",
              "closed-loop latency per frame (ms): preprocess + perception + policy + post-processing + control")
    print(format_table(results))
    print(f"wrote {out / 'bench.json'} and {out / 'latency.png'}")
    return 0
