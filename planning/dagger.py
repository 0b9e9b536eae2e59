"""DAgger data: the learned agent drives random routes while the privileged expert labels every state it visits.

The recorder (:mod:`drivestack.sim.record.recorder`) runs the episodes, so the dataset format, resume by deterministic replay,
workers and progress bars are those of ``collect``; the learned agent is its driver. ``control`` is
what was applied (the learner's, or the expert's in the 1 s blocks drawn with probability ``beta``),
``expert_control`` and ``expert_target_speed`` are the expert's labels. The manifest stores this config, so
the learner that made a dataset is known and resuming it with another one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from drivestack.common.config import to_dict
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.agents.learned import PolicyAgent, make_driver
from drivestack.planning.agents.red_light import RedLightConfig
from drivestack.planning.agents.safety import SafetyConfig
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.sim.record.dataset_io import MANIFEST_NAME, DatasetError, load_manifest
from drivestack.sim.record.recorder import CollectConfig, CollectResult, NoiseConfig, collect


@dataclass
class DaggerConfig(CollectConfig):
    """``drivestack dagger``: the recording settings of ``collect`` plus the learner that drives."""

    out: str = "data/dagger"  # (str) dataset folder; an existing one is resumed (same settings and learner required)
    seed: int = 1  # (int) master seed of the routes; not collect's 0, so the routes differ from the expert data's
    noise: NoiseConfig = field(default_factory=lambda: NoiseConfig(enabled=False))  # steering noise on the applied controls
    model: str = "runs/policy/last.pt"  # (str) driving-model checkpoint (engine=torch)
    engine: Literal["torch", "onnx"] = "torch"  # (str) run the learner's network in PyTorch or in ONNX Runtime
    onnx_model: str = "runs/export/fused_fp32.onnx"  # (str) fused ONNX graph (engine=onnx)
    engine_config: EngineConfig = field(default_factory=EngineConfig)  # ONNX Runtime settings
    camera: str = "front"  # (str) camera the learner reads
    beta: float = 0.0  # (float) probability that the expert drives instead of the learner, drawn per 1 s block
    threads: int = 1  # (int) PyTorch CPU threads per process; 0 = PyTorch's default

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


def make_learner(config: DaggerConfig) -> PolicyAgent:
    """The learned agent of ``config``, checked against the camera (each worker process builds its own)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    driver = make_driver(config.engine, config.model, config.onnx_model, config.engine_config)
    agent = PolicyAgent(driver, config.camera, creep=CreepConfig(enabled=False), safety=SafetyConfig(enabled=False, red_light=RedLightConfig(enabled=False)))  # its own failures are what DAgger records
    agent.setup(config.sim)  # refuses a model that does not fit the camera before any episode starts
    return agent


def learner_of(settings: dict) -> str:
    """The model file that drives, from a config as stored in a manifest."""
    if "engine" not in settings:
        return "none (an expert collection)"
    return settings["onnx_model"] if settings["engine"] == "onnx" else settings["model"]


def check_learner(config: DaggerConfig) -> None:
    """Refuse to resume a dataset in ``out`` recorded with another learner: its states are that model's."""
    path = Path(config.out) / MANIFEST_NAME
    if not path.is_file():
        return
    recorded, wanted = learner_of(load_manifest(config.out).config), learner_of(to_dict(config))
    if recorded != wanted:
        raise DatasetError(path, f"recorded with the learner {recorded}, not {wanted}: a DAgger dataset holds the "
                                 "states one model visited; resume it with that model, or use another 'out' folder")  # fmt: skip


def dagger(config: DaggerConfig) -> CollectResult:
    """Record (or resume) every DAgger episode of ``config``."""
    check_learner(config)
    make_learner(config)  # a model that cannot drive is an error here, not in every episode
    return collect(config, ExpertAgent, make_driver=partial(make_learner, config), beta=config.beta)
