"""ONNX Runtime engine for exported drivestack models, as the closed loop uses it.

- Providers in the order TensorRT, CUDA, CPU, each only when it can run: the GPU ones need a GPU that
  torch can see (onnxruntime-gpu lists them even on machines without one); the log says which runs and why
  a faster one was skipped. TensorRT gets engine and timing caches.
- On a GPU, inputs and outputs are bound with IO binding to buffers allocated once, so a frame
  allocates nothing; on the CPU, thread counts come from the config, and the threads do not spin-wait between
  runs unless asked (spinning threads hold the cores the simulator needs between frames: on 2 cores shared with
  other jobs the closed loop ran twice as fast without them, on idle cores as fast; ``drivestack bench-sim
  agent=policy``).
- The model file must describe itself (metadata written by ``drivestack export``) and match what the
  caller expects (kind, image size); inputs are checked for shape and dtype with errors that say what is wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from drivestack.common.errors import InputError
from drivestack.planning.deploy.onnx_io import read_metadata

log = logging.getLogger(__name__)


class EngineError(InputError):
    """A model file or an input the engine cannot use; the message names the file or the input."""


@dataclass
class EngineConfig:
    """``engine:`` settings of the closed loop."""

    providers: list[str] = field(default_factory=list)  # (list[str]) order to try; empty = TensorRT, CUDA, CPU
    intra_op_threads: int = 0  # (int) CPU threads inside an operator; 0 = ONNX Runtime's default
    inter_op_threads: int = 1  # (int) CPU threads across operators
    spinning: bool = False  # (bool) CPU threads spin-wait for work between runs (ONNX Runtime's default); false leaves the cores to the simulator between frames
    warmup: int = 5  # (int) runs before the loop starts
    cache_dir: str = "runs/trt_cache"  # (str) TensorRT engine and timing caches
    io_binding: bool = True  # (bool) on a GPU, bind pre-allocated device buffers


def _gpu_present() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # torch is a dependency; this only guards stripped-down deployments
        return False


def choose_providers(requested: list[str] | None, available: list[str], gpu: bool) -> tuple[list[str], list[str]]:
    """Providers to use, in order, and the reasons the skipped ones were skipped."""
    wanted = requested or ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen, skipped = [], []
    for name in wanted:
        if name not in available:
            skipped.append(f"{name}: not in this onnxruntime build (install onnxruntime-gpu for CUDA/TensorRT)")
        elif name != "CPUExecutionProvider" and not gpu:
            skipped.append(f"{name}: listed by onnxruntime but no CUDA GPU is visible")
        else:
            chosen.append(name)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen, skipped


def runnable_precisions(precisions: list[str]) -> list[str]:
    """``precisions`` whose graphs the benches time here: fp16 only when a GPU is present."""
    return [p for p in precisions if p != "fp16" or _gpu_present()]


def session_options(config: EngineConfig):
    """ONNX Runtime session options of the engine: every graph optimisation, the config's thread counts and spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    options.log_severity_level = 3
    return options


class OnnxEngine:
    """Runs one exported model; ``engine(feeds) -> dict of outputs`` (numpy)."""

    def __init__(self, path: str | Path, config: EngineConfig | None = None, expect: dict | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.config = config or EngineConfig()
        if not self.path.is_file():
            raise EngineError(f"model file not found: {self.path}")
        try:
            self.meta = read_metadata(self.path)
        except Exception as e:  # onnx raises DecodeError and others for a corrupt file
            raise EngineError(f"{self.path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
        if not self.meta:
            raise EngineError(f"{self.path}: no drivestack metadata; export it with `drivestack export`")
        for key, value in (expect or {}).items():
            if self.meta.get(key) != value:
                raise EngineError(f"{self.path}: model {key} is {self.meta.get(key)!r}, the config expects {value!r}")
        providers, skipped = choose_providers(self.config.providers, ort.get_available_providers(), _gpu_present())
        for reason in skipped:
            log.info("engine: skipped %s", reason)
        options = session_options(self.config)
        provider_options = [self._provider_options(p) for p in providers]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers, provider_options=provider_options)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise EngineError(f"{self.path}: ONNX Runtime cannot load it ({e})") from None
        self.provider = self.session.get_providers()[0]
        log.info("engine: %s runs on %s", self.path.name, self.provider)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._binding = None
        if self.provider != "CPUExecutionProvider" and self.config.io_binding:
            self._bind()
        for _ in range(self.config.warmup):
            self.run({name: np.zeros(self._shape(i), _DTYPES[i.type]) for name, i in self.inputs.items()})

    def _provider_options(self, provider: str) -> dict:
        if provider == "TensorrtExecutionProvider":
            cache = str(Path(self.config.cache_dir).resolve())
            return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache, "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": cache, "trt_fp16_enable": self.meta.get("precision") == "fp16"}  # fmt: skip
        return {}

    @staticmethod
    def _shape(arg) -> list[int]:
        return [d if isinstance(d, int) else 1 for d in arg.shape]

    def _bind(self) -> None:
        """Device buffers allocated once; each run copies the inputs in and the outputs out."""
        import onnxruntime as ort

        self._binding = self.session.io_binding()
        self._device_inputs = {
            name: ort.OrtValue.ortvalue_from_shape_and_type(self._shape(i), _DTYPES[i.type], "cuda", 0)
            for name, i in self.inputs.items()
        }
        for name, value in self._device_inputs.items():
            self._binding.bind_ortvalue_input(name, value)
        for out in self.session.get_outputs():
            self._binding.bind_output(out.name, "cuda")

    def check(self, feeds: dict[str, np.ndarray]) -> None:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise EngineError(f"{self.path.name}: missing inputs {sorted(missing)} (expects {sorted(self.inputs)})")
        for name, arg in self.inputs.items():
            value, dtype = feeds[name], _DTYPES[arg.type]
            if value.dtype != dtype:
                raise EngineError(f"{self.path.name}: input '{name}' must be {np.dtype(dtype).name}, got {value.dtype}")
            expected = self._shape(arg)
            fixed = [d if isinstance(d, int) else None for d in arg.shape]
            if value.ndim != len(expected) or any(f is not None and f != v for f, v in zip(fixed, value.shape)):
                raise EngineError(f"{self.path.name}: input '{name}' must have shape {arg.shape}, got {list(value.shape)}")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check(feeds)
        if self._binding is None:
            return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        for name, value in feeds.items():
            self._device_inputs[name].update_inplace(np.ascontiguousarray(value))
        self.session.run_with_iobinding(self._binding)
        return dict(zip(self.output_names, self._binding.copy_outputs_to_cpu()))

    __call__ = run


_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(float16)": np.float16}
