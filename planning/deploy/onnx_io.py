"""ONNX export with checks: torch.onnx (dynamo exporter) -> onnx.checker + shape inference -> parity against
PyTorch on real inputs -> self-describing metadata -> atomic rename. Variants: fp16 and INT8 static QDQ.

A failed check raises :class:`ExportError` and leaves no file behind (the model is written to a temporary
name and renamed only when every check passed).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
import torch
from drivestack.common.io import atomic_path

META_PREFIX = "drivestack."


class ExportError(RuntimeError):
    """An export whose checks failed; nothing was written."""


@dataclass
class ParityReport:
    max_abs_diff: dict[str, float]  # per output
    frames: int


def to_numpy(args: Sequence[torch.Tensor]) -> list[np.ndarray]:
    return [a.detach().cpu().numpy() for a in args]


def write_metadata(model: onnx.ModelProto, metadata: dict) -> None:
    """Store ``metadata`` (JSON-encoded values) in the model's metadata_props, keys prefixed ``drivestack.``."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, json.dumps(value)


def read_metadata(model: onnx.ModelProto | str | Path) -> dict:
    """The ``drivestack.`` metadata of a model (or model file), decoded."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    return {p.key[len(META_PREFIX):]: json.loads(p.value) for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def _session(path: str | Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(path: str | Path, module: torch.nn.Module, inputs: Iterable[tuple[torch.Tensor, ...]],
                 input_names: list[str], output_names: list[str]) -> ParityReport:  # fmt: skip
    """Largest absolute difference per output between ORT (CPU) and PyTorch over ``inputs``."""
    session = _session(path)
    worst = {name: 0.0 for name in output_names}
    frames = 0
    with torch.no_grad():
        for args in inputs:
            reference = module(*args)
            got = session.run(output_names, dict(zip(input_names, to_numpy(args))))
            for name, value in zip(output_names, got):
                diff = np.abs(value.astype(np.float64) - reference[name].numpy().astype(np.float64))
                worst[name] = max(worst[name], float(diff.max()) if diff.size else 0.0)
            frames += 1
    return ParityReport(worst, frames)


def _atomic_save(model: onnx.ModelProto, path: Path) -> None:
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def export_onnx(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: list[str],
    output_names: list[str],
    metadata: dict,
    parity_inputs: list[tuple[torch.Tensor, ...]],
    atol: dict[str, float],
    opset: int = 18,
    dynamic_batch: bool = False,
) -> ParityReport:
    """Export ``module`` (eval mode) to ``path``; check it, compare it with PyTorch, then write it."""
    path = Path(path)
    module = module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        dynamic = {name: {0: "batch"} for name in input_names} if dynamic_batch else None
        try:
            torch.onnx.export(module, example, str(raw), input_names=input_names, output_names=output_names,
                              opset_version=opset, dynamo=True, external_data=False, dynamic_axes=dynamic,
                              verbose=False)  # fmt: skip
        except Exception as e:  # the exporter raises many types; name the model and keep the cause
            raise ExportError(f"torch.onnx.export failed for {type(module).__name__}: {e}") from e
        model = onnx.load(str(raw))
        try:
            onnx.checker.check_model(model, full_check=True)
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as e:
            raise ExportError(f"{path}: exported graph fails onnx checks: {e}") from e
        write_metadata(model, metadata)
        onnx.save(model, str(raw))
        report = check_parity(raw, module, parity_inputs, input_names, output_names)
        failed = {k: v for k, v in report.max_abs_diff.items() if v > atol.get(k, np.inf)}
        if failed:
            raise ExportError(f"{path}: ONNX Runtime differs from PyTorch beyond tolerance: "
                              + ", ".join(f"{k} max |diff| {v:.2e} > {atol[k]:.0e}" for k, v in failed.items()))  # fmt: skip
        _atomic_save(model, path)
    return report


def convert_fp16(src: str | Path, dst: str | Path) -> None:
    """fp16 weights and activations (for GPUs); inputs and outputs keep their types."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = read_metadata(model)
    half = convert_float_to_float16(model, keep_io_types=True)
    write_metadata(half, {**meta, "precision": "fp16"})
    _atomic_save(half, Path(dst))


class _Calibration:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_int8(src: str | Path, dst: str | Path, calibration: list[dict[str, np.ndarray]]) -> None:
    """INT8 static quantization (QDQ, per-channel int8 weights, uint8 activations) calibrated on real frames."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if not calibration:
        raise ExportError("INT8 quantization needs calibration frames; none were given")
    meta = read_metadata(src)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(out), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)  # fmt: skip
        model = onnx.load(str(out))
        write_metadata(model, {**meta, "precision": "int8"})
        _atomic_save(model, Path(dst))
