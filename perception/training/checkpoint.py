"""Checkpoints that rebuild their model by themselves (nanoGPT style) and are written atomically.

A checkpoint is a dict saved with ``torch.save``:

- ``model``: {``builder``: "module:function", ``config_class``: "module:Class", ``config``: dict} -- the
  builder is called with the config dataclass rebuilt from the dict;
- ``state_dict`` (and ``ema_state_dict`` when EMA is on): the weights;
- ``meta``: whatever describes the model's outputs (class names, palettes);
- ``config``: the whole run config; ``epoch``, ``step``, ``optimizer``, ``scheduler``, ``scaler``, ``rng``,
  ``metrics``: the training state for an exact resume.

Only plain types and tensors are stored, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import importlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sim.config import config_from_dict


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: name it
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from None


def import_object(spec: str) -> Any:
    """``"package.module:name"`` -> the object."""
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"expected 'module:name', got '{spec}'")
    return getattr(importlib.import_module(module), name)


def model_spec(builder: str, config: Any) -> dict[str, Any]:
    """The ``model`` entry of a checkpoint for a builder ``"module:function"`` taking ``config``."""
    cls = type(config)
    return {"builder": builder, "config_class": f"{cls.__module__}:{cls.__qualname__}", "config": to_plain(config)}


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    config = config_from_dict(import_object(spec["config_class"]), spec["config"], source="checkpoint model config")
    return import_object(spec["builder"])(config)


def load_model(path: str | Path, ema: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode, on the CPU: its trained weights, or with ``ema`` its
    EMA weights when it has them."""
    checkpoint = load_checkpoint(path)
    model = build_from_spec(checkpoint["model"])
    key = "ema_state_dict" if ema and checkpoint.get("ema_state_dict") is not None else "state_dict"
    model.load_state_dict(checkpoint[key])
    return model.eval(), checkpoint


def rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch RNG states, as plain data and tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": to_plain(random.getstate()),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and enums -> dicts, lists and plain numbers (what weights_only loading accepts)."""
    import dataclasses

    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value
