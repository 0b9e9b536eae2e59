"""Latency beside published peers: the fused driving graph and ultralytics YOLO11n, YOLO11n-seg and YOLO26n at the
same input size, in PyTorch eager and ONNX Runtime, timed interleaved in one run (every round runs each variant
once, in a rotating order, so load on a shared machine hits all alike); a markdown table with wall-time p50/p90,
the process's CPU time p50 and their ratios to the first peer on ONNX Runtime fp32, JSON and a latency histogram.

ultralytics (AGPL-3.0) is an optional extra, ``pip install drivestack[bench]``, imported only here and only when
peers are asked for. Its models are built from the yaml files in its wheel with random weights (latency does not
depend on the weights) and exported by its own exporter, offline and without installing anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from drivestack.common.errors import InputError
from drivestack.planning.deploy.latency import histogram, summarize
from drivestack.planning.deploy.runtime import (
    EngineConfig,
    OnnxEngine,
    _gpu_present,
    choose_providers,
    runnable_precisions,
    session_options,
)

if TYPE_CHECKING:
    from drivestack.planning.deploy.bench import BenchConfig

PEERS = ("yolo11n", "yolo11n-seg", "yolo26n")
FUSED = "drivestack fused"


@dataclass
class Variant:
    """One model on one runtime: ``run(x)`` is one timed inference on a prepared input from ``inputs``."""

    model: str
    runtime: str
    run: Callable[[Any], Any]
    inputs: list

    @property
    def name(self) -> str:
        return f"{self.model} {self.runtime}"


def import_ultralytics():
    """The ultralytics module, set to stay offline and never install packages; a one-line error when missing."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    try:
        import ultralytics
    except ImportError:
        raise InputError("bench peers=... needs the optional ultralytics extra: pip install drivestack[bench]") from None
    return ultralytics


def export_peer(name: str, size: tuple[int, int], folder: Path) -> tuple[torch.nn.Module, Path]:
    """(fused eval-mode PyTorch model, ONNX fp32 file) of the ultralytics model ``name`` built from its yaml."""
    yolo = import_ultralytics().YOLO(f"{name}.yaml")
    folder = folder.resolve()  # the export runs in a temporary working folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # the exporter writes beside the yaml's name
        exported = Path(tmp) / yolo.export(format="onnx", imgsz=size, device="cpu", simplify=True, verbose=False)
        path = Path(shutil.move(exported, folder / f"{name}.onnx"))
    return yolo.model.fuse(verbose=False).eval(), path


def _peer_variants(name: str, size: tuple[int, int], folder: Path, engine: EngineConfig, frames: list[np.ndarray]) -> list[Variant]:
    import onnxruntime as ort

    module, path = export_peer(name, size, folder)
    providers, _ = choose_providers(engine.providers, ort.get_available_providers(), _gpu_present())
    session = ort.InferenceSession(str(path), session_options(engine), providers=providers)
    feed = session.get_inputs()[0].name
    images = [np.ascontiguousarray(f, np.float32) / 255.0 for f in frames]  # ultralytics scales 0..255 to 0..1 before its graph

    @torch.inference_mode()
    def eager(x):
        return module(x)

    return [Variant(name, "pytorch eager", eager, [torch.from_numpy(x) for x in images]),
            Variant(name, "onnxruntime fp32", lambda x: session.run(None, {feed: x}), images)]  # fmt: skip


def _fused_variants(checkpoint: str, onnx_dir: Path, precisions: list[str], engine: EngineConfig, frames: list) -> list[Variant]:
    from drivestack.planning.agents.learned import load_driving_model
    from drivestack.planning.policy.driving_model import INPUTS

    model, _ = load_driving_model(checkpoint)

    @torch.inference_mode()
    def eager(args):
        return model(*args)

    variants = [Variant(FUSED, "pytorch eager", eager, frames)]
    feeds = [dict(zip(INPUTS, (a.numpy() for a in args))) for args in frames]
    for precision in runnable_precisions(precisions):
        path = onnx_dir / f"fused_{precision}.onnx"
        if not path.is_file():
            print(f"skipped {FUSED} onnxruntime {precision}: {path} not found (make it with `drivestack export`)")
            continue
        variants.append(Variant(FUSED, f"onnxruntime {precision}", OnnxEngine(path, engine, expect={"kind": "fused"}), feeds))
    return variants


def time_interleaved(variants: list[Variant], count: int, warmup: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Milliseconds per inference of every variant over ``count`` rounds, after ``warmup`` untimed rounds: wall
    time, and the CPU time of this process (all its threads), which a shared machine's load inflates far less."""
    wall, cpu = {v.name: [] for v in variants}, {v.name: [] for v in variants}
    for i in range(warmup + count):
        shift = i % len(variants)
        for v in variants[shift:] + variants[:shift]:
            x = v.inputs[i % len(v.inputs)]
            start, start_cpu = time.perf_counter(), time.process_time()
            v.run(x)
            if i >= warmup:
                wall[v.name].append(1e3 * (time.perf_counter() - start))
                cpu[v.name].append(1e3 * (time.process_time() - start_cpu))
    return {k: np.array(v) for k, v in wall.items()}, {k: np.array(v) for k, v in cpu.items()}


def with_ratios(stats: dict[str, dict[str, float]], reference: str) -> dict[str, dict[str, float]]:
    """Each variant's p50 and p90 divided by those of ``reference`` (a key of ``stats``), added as ``ratio_p50/p90``."""
    if reference not in stats:
        raise ValueError(f"reference '{reference}' is not among the timed variants {sorted(stats)}")
    ref = stats[reference]
    return {k: {**s, "ratio_p50": s["p50"] / ref["p50"], "ratio_p90": s["p90"] / ref["p90"]} for k, s in stats.items()}


def markdown_table(results: dict[str, dict], reference: str) -> str:
    """Rows of ``{model, runtime, p50, p90, ratio_p50, ratio_p90, cpu_p50, cpu_ratio_p50}``, fastest p50 first."""
    lines = [f"| model | runtime | p50 ms | p90 ms | p50 / {reference} | p90 / {reference} | CPU p50 ms | CPU p50 ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in sorted(results.values(), key=lambda r: r["p50"]):
        lines.append(f"| {r['model']} | {r['runtime']} | {r['p50']:.2f} | {r['p90']:.2f} | {r['ratio_p50']:.2f} | {r['ratio_p90']:.2f} "
                     f"| {r['cpu_p50']:.2f} | {r['cpu_ratio_p50']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def bench_peers(config: BenchConfig) -> int:
    """Time the fused graph and ``config.peers`` interleaved on recorded frames; write ``peers.json``, ``peers.md``
    and ``peers.png`` to ``config.out``."""
    from drivestack.planning.deploy.export import recorded_inputs

    import_ultralytics()  # before any work: a missing extra fails in one line
    frames = recorded_inputs(config.data, config.camera, 32)
    size = tuple(frames[0][0].shape[-2:])
    engine = EngineConfig(intra_op_threads=config.threads, warmup=3)
    out = Path(config.out)
    variants = _fused_variants(config.checkpoint, Path(config.onnx_dir), config.precisions, engine, frames)
    images = [args[0].numpy() for args in frames]
    for name in config.peers:
        variants += _peer_variants(name, size, out / "onnx", engine, images)
    ms, cpu_ms = time_interleaved(variants, config.frames, config.warmup)
    reference = f"{config.peers[0]} onnxruntime fp32"
    stats, cpu = with_ratios(summarize(ms), reference), with_ratios(summarize(cpu_ms), reference)
    results = {v.name: {"model": v.model, "runtime": v.runtime, **stats[v.name], "cpu_p50": cpu[v.name]["p50"],
                        "cpu_ratio_p50": cpu[v.name]["ratio_p50"]} for v in variants}  # fmt: skip
    table = markdown_table(results, reference)
    (out / "peers.json").write_text(json.dumps({"input_size": list(size), "frames": config.frames, "threads": config.threads,
                                                "reference": reference, "results": results}, indent=2))  # fmt: skip
    (out / "peers.md").write_text(table + "\n")
    histogram(ms, out / "peers.png", f"latency per inference (ms), batch 1, input {size[1]}x{size[0]}")
    print(table)
    print(f"wrote {out / 'peers.json'}, {out / 'peers.md'} and {out / 'peers.png'}")
    return 0
