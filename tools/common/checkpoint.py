"""Checkpoints that rebuild their model by themselves (nanoGPT style) and are written atomically.

A checkpoint is a dict saved with ``torch.save``:

- ``model``: {``builder``: a name in :data:`BUILDERS` (``"perception"``, ``"driving"``), ``config``: dict} --
  the builder is called with its config dataclass rebuilt from the dict; moving a module never breaks a
  checkpoint, since only the registry below names import paths;
- ``state_dict`` (and ``ema_state_dict`` when EMA is on): the weights;
- ``meta``: whatever describes the model's outputs (class names, palettes);
- ``config``: the whole run config; ``epoch``, ``step``, ``epoch_step`` (steps done in the epoch of a mid-epoch save), ``optimizer``, ``scheduler``, ``scaler``, ``rng``,
  ``metrics``: the training state for an exact resume.

Only plain types and tensors are stored, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from drivestack.common.config import config_from_dict
from drivestack.common.errors import InputError
from drivestack.common.io import atomic_path
from drivestack.common.paths import resolve
from torch import nn


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class CheckpointError(InputError):
    """A file given as a checkpoint that is missing, unreadable or not a drivestack checkpoint."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, on the CPU; a missing, unreadable or foreign file (a plain state_dict, an
    ONNX graph) is a :class:`CheckpointError` naming it."""
    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: name it, with the first sentence of torch's reason
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    spec = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not (isinstance(spec, dict) and {"builder", "config"} <= spec.keys() and isinstance(checkpoint.get("state_dict"), dict)):
        raise CheckpointError(f"{path}: not a drivestack checkpoint (it needs a 'model' spec and a 'state_dict'; "
                              "a bare state_dict does not say which model it belongs to)")  # fmt: skip
    return checkpoint


# The models a checkpoint can rebuild: name -> (builder, its config class), as "module:object".
BUILDERS = {
    "perception": ("drivestack.perception.models.multitask:build_multitask", "drivestack.perception.models.multitask:ModelConfig"),
    "driving": ("drivestack.planning.policy.driving_model:build_policy_training",
                "drivestack.planning.policy.driving_model:DrivingModelConfig"),
}  # fmt: skip
# Checkpoints written before builders had names stored the builder's import path.
BUILDER_ALIASES = {
    "perception.models.multitask:build_multitask": "perception",
    "planning.driving_model:build_policy_training": "driving",
}


def builder_name(spec: dict[str, Any]) -> str:
    """The registered name of a checkpoint's builder (old import paths resolved through the aliases)."""
    name = BUILDER_ALIASES.get(spec["builder"], spec["builder"])
    if name not in BUILDERS:
        raise CheckpointError(f"unknown model builder '{spec['builder']}' (known: {', '.join(BUILDERS)})")
    return name


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def model_spec(builder: str, config: Any) -> dict[str, Any]:
    """The ``model`` entry of a checkpoint: a registered builder's name and its config."""
    if builder not in BUILDERS:
        raise ValueError(f"model_spec: builder must be one of {list(BUILDERS)}, got '{builder}'")
    return {"builder": builder, "config": to_plain(config)}


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """The model a checkpoint's ``model`` entry describes, with fresh weights."""
    builder, config_class = BUILDERS[builder_name(spec)]
    config = config_from_dict(_import(config_class), spec["config"], source="checkpoint model config")
    return _import(builder)(config)


# Models held inside another's checkpoint: (its builder, the inner builder) -> (the inner config's key in the
# outer config, the inner weights' prefix): a driving model's checkpoint holds its perception network.
PARTS = {("driving", "perception"): ("perception", "model.perception.")}


def load_model(path: str | Path, ema: bool = False, builder: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode, on the CPU: its trained weights, or with ``ema`` its
    EMA weights when it has them. ``builder`` (e.g. ``"perception"``): that model, taken out of a checkpoint of
    a model holding it (:data:`PARTS`) when the checkpoint is not one itself; the checkpoint returned then
    describes it."""
    checkpoint = load_checkpoint(path)
    key = "ema_state_dict" if ema and checkpoint.get("ema_state_dict") is not None else "state_dict"
    spec, weights, name = checkpoint["model"], checkpoint[key], builder_name(checkpoint["model"])
    if builder and builder != name:
        if (name, builder) not in PARTS:
            raise CheckpointError(f"{path}: a '{name}' checkpoint, which holds no '{builder}' model")
        config_key, prefix = PARTS[(name, builder)]
        spec = {"builder": builder, "config": spec["config"][config_key]}
        weights = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        checkpoint = {**checkpoint, "model": spec, key: weights, "epoch": None}
    model = build_from_spec(spec)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit its model spec ({str(e).splitlines()[0]})") from None
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
