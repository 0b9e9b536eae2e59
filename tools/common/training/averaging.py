"""Uniform weight averaging of checkpoints of one model (a "model soup", Wortsman et al. 2022): the
checkpoints of successive fine-tunes of one network lie in one basin, and their mean often generalises
better than any of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from drivestack.common.checkpoint import load_checkpoint, save_checkpoint
from drivestack.common.errors import InputError


def average_checkpoints(paths: list[str | Path]) -> dict[str, Any]:
    """A checkpoint whose floating-point weights are the mean of ``paths``' weights (integer buffers such as
    BatchNorm's batch counter and everything else from the last one). Refuses checkpoints of different
    models, naming the file and what differs. The result holds no training state: it is not resumable,
    and ``soup`` lists its sources."""
    if not paths:
        raise InputError("average_checkpoints: no checkpoints given")
    checkpoints = [load_checkpoint(p) for p in paths]
    last = checkpoints[-1]
    for path, checkpoint in zip(paths, checkpoints):
        if checkpoint["model"] != last["model"]:
            raise InputError(f"{path}: another model than {paths[-1]} (its `model` spec differs)")
        mismatched = sorted(k for k in set(checkpoint["state_dict"]) | set(last["state_dict"])
                            if k not in checkpoint["state_dict"] or k not in last["state_dict"]
                            or checkpoint["state_dict"][k].shape != last["state_dict"][k].shape)  # fmt: skip
        if mismatched:
            raise InputError(f"{path}: weights {mismatched[:3]} missing or of another shape than in {paths[-1]}")
    weights = {}
    for name, tensor in last["state_dict"].items():
        if tensor.is_floating_point():
            weights[name] = torch.stack([c["state_dict"][name].float() for c in checkpoints]).mean(0).to(tensor.dtype)
        else:
            weights[name] = tensor
    return {"model": last["model"], "state_dict": weights, "meta": last.get("meta", {}), "config": last.get("config", {}),
            "epoch": last.get("epoch"), "soup": [str(p) for p in paths]}  # fmt: skip


@dataclass
class SoupConfig:
    checkpoints: list[str] = field(default_factory=list)  # (list[str]) checkpoints of one model to average, e.g. [runs/policy_dagger3/last.pt, runs/policy_dagger4/last.pt]
    out: str = "runs/policy_soup/last.pt"  # (str) the averaged checkpoint


def soup(config: SoupConfig) -> int:
    """Write the mean of ``config.checkpoints``' weights to ``config.out``; fewer than two files or a missing
    one is an :class:`InputError` naming them."""
    missing = [c for c in config.checkpoints if not Path(c).is_file()]
    if missing:
        raise InputError(f"checkpoints not found: {', '.join(missing)}")
    if len(config.checkpoints) < 2:
        raise InputError(f"'checkpoints' needs two or more files, got {config.checkpoints}")
    save_checkpoint(config.out, average_checkpoints(config.checkpoints))
    print(f"{config.out}: mean of the weights of {len(config.checkpoints)} checkpoints ({', '.join(config.checkpoints)})")
    return 0
