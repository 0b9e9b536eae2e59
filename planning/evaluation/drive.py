"""Drive an agent over a route suite and report leaderboard metrics (per-route JSON, summary, videos)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from drivestack.common.config import ConfigError
from drivestack.common.io import write_json_atomic
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.sim.settings import SimConfig


@dataclass
class DriveConfig:
    agent: Literal["expert", "policy"] = "expert"  # (str) which agent drives: the privileged expert or the learned policy
    engine: Literal["torch", "onnx"] = "torch"  # (str) run the policy's network in PyTorch or in ONNX Runtime
    model: str = "models/driving.pt"  # (str) driving-model checkpoint (engine=torch)
    onnx_model: str = "models/driving_fused_int8.onnx"  # (str) fused ONNX graph (engine=onnx)
    perception: str = ""  # (str) engine=torch: perception checkpoint whose weights replace the model's; empty = keep
    camera: str = "front"  # (str) camera the policy agent reads
    engine_config: EngineConfig = field(default_factory=EngineConfig)  # ONNX Runtime settings
    suite: str = "configs/routes/heldout.yaml"  # (str) route suite file
    routes: list[str] = field(default_factory=list)  # (list[str]) only these route names; empty: all
    out: str = "runs/drive"  # (str) results folder; a re-run resumes, skipping finished routes
    videos: bool = False  # (bool) write an MP4 with overlays and a top-down map per route
    traces: bool = False  # (bool) write a per-step CSV and plot per route (out/traces): speed, light ahead, the agent's target speed and brake probability, the expert's label
    creep: CreepConfig = field(default_factory=CreepConfig)  # policy agent: drive off slowly after a long stop when no red light and no obstacle is seen (planning/creep.py)
    sim: SimConfig = field(default_factory=SimConfig)


def make_agent_factory(config: DriveConfig):
    """A function returning the agent for each route (the policy's model is loaded once)."""
    from drivestack.planning.agents.expert import ExpertAgent

    if config.agent == "expert":
        return ExpertAgent
    from drivestack.planning.agents.learned import PolicyAgent, make_driver

    agent = PolicyAgent(make_driver(config.engine, config.model, config.onnx_model, config.engine_config, config.perception), config.camera,
                        creep=config.creep)  # fmt: skip
    return lambda: agent


def driver_identity(config: DriveConfig) -> dict:
    """What decides how the routes are driven: the agent, its model files' contents, the simulator, the suite."""
    from drivestack.common.io import file_digest

    identity = {"agent": config.agent, "suite": config.suite, "sim": asdict(config.sim)}
    if config.agent == "policy":
        model = config.onnx_model if config.engine == "onnx" else config.model
        identity |= {"engine": config.engine, "model_sha256": file_digest(model),
                     "perception_sha256": file_digest(config.perception) if config.perception else "",
                     "camera": config.camera, "creep": asdict(config.creep)}  # fmt: skip
    return json.loads(json.dumps(identity))  # as it reads back from driver.json (tuples become lists)


def check_resume(out: Path, identity: dict) -> None:
    """A results folder holds the routes of one driver: resuming it with another (a retrained model under the
    same file name, other simulator settings) would mix their results in one summary."""
    path = out / "driver.json"
    if path.is_file():
        recorded = json.loads(path.read_text())
        changed = [k for k in identity if recorded.get(k) != identity[k]]
        if changed:
            raise ConfigError(f"{out}: its routes were driven with another {', '.join(changed)} ({path}); "
                              "use another 'out' folder, or delete this one to drive again")  # fmt: skip
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, identity)


def drive_suite(config: DriveConfig) -> int:
    from drivestack.planning.evaluation.expert import format_table
    from drivestack.planning.evaluation.suite import load_suite, run_suite

    suite = load_suite(config.suite)
    check_resume(Path(config.out), driver_identity(config))
    results, summary = run_suite(make_agent_factory(config), suite, config.sim, Path(config.out), config.videos,
                                 config.routes or None, config.traces)  # fmt: skip
    print(format_table(results, summary))
    print(f"results in {config.out}/summary.json")
    return 0
