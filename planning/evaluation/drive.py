"""Drive an agent over a route suite and score it as the leaderboard does: ``drivestack.drive`` and the
``drive`` and ``expert`` verbs are this one path (per-route records, resume, videos, traces)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Literal

from drivestack.common.config import ConfigError
from drivestack.common.errors import InputError
from drivestack.common.io import ensure_writable, file_digest, write_json_atomic
from drivestack.common.parallel import RayConfig
from drivestack.common.resume import changed_settings
from drivestack.planning.agents.creep import CreepConfig
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.agents.learned import PolicyAgent
from drivestack.planning.agents.safety import SafetyConfig
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.planning.evaluation.metrics import RouteResult, Summary, format_table
from drivestack.planning.evaluation.suite import RouteSuite, generated_suite, load_suite, route_finished, run_suite
from drivestack.planning.predict import SHIPPED_MODEL, Model, load
from drivestack.sim.agent import Agent
from drivestack.sim.settings import SimConfig

DEFAULT_SUITE = "configs/routes/heldout.yaml"
TORCH_MODEL = "models/driving.pt"
ONNX_MODEL = SHIPPED_MODEL


@dataclass
class DriveConfig:
    agent: Literal["expert", "policy"] = "expert"  # (str) which agent drives: the privileged expert or the learned policy
    engine: Literal["torch", "onnx"] = "onnx"  # (str) run the policy's network in ONNX Runtime (the shipped INT8 graph, the best measured) or PyTorch
    model: str = TORCH_MODEL  # (str) driving-model checkpoint (engine=torch)
    onnx_model: str = ONNX_MODEL  # (str) fused ONNX graph (engine=onnx)
    perception: str = ""  # (str) engine=torch: perception checkpoint whose weights replace the model's; empty = keep
    camera: str = "front"  # (str) camera the policy agent reads
    engine_config: EngineConfig = field(default_factory=EngineConfig)  # ONNX Runtime settings
    suite: str = DEFAULT_SUITE  # (str) route suite file
    routes: list[str] = field(default_factory=list)  # (list[str]) only these route names; empty: all
    out: str = "runs/drive"  # (str) results folder; a re-run resumes, skipping finished routes
    videos: bool = False  # (bool) write an MP4 with overlays and a top-down map per route
    traces: bool = False  # (bool) write a per-step CSV and plot per route (out/traces): speed, light ahead, the agent's target speed and brake probability, the expert's label
    creep: CreepConfig = field(default_factory=CreepConfig)  # policy agent: drive off slowly after a long stop when no red light and no obstacle is seen (planning/agents/creep.py)
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # policy agent: brake fully when a tracked object's time to collision is short (planning/agents/safety.py)
    workers: int = 1  # (int) routes driven at a time, one simulator and one agent each, as Ray tasks; 1 = one after the other in this process
    ray: RayConfig = field(default_factory=RayConfig)  # where the workers run: a local Ray by default, or a cluster
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        """A PyTorch checkpoint named with the ONNX graph left at the shipped one means engine=torch was forgotten."""
        torch_only = self.model != TORCH_MODEL or self.perception
        if self.agent == "policy" and self.engine == "onnx" and torch_only and self.onnx_model == ONNX_MODEL:
            raise ValueError(f"model={self.model} and perception= are PyTorch checkpoints, driven with engine=torch; the "
                             f"default engine=onnx drives onnx_model={self.onnx_model}")  # fmt: skip


@dataclass
class SuiteResults:
    """The records of a suite's routes and their leaderboard summary."""

    routes: list[RouteResult]
    summary: Summary
    out: Path

    def table(self) -> str:
        return format_table(self.routes, self.summary)

    def to_dict(self) -> dict:
        return {"summary": asdict(self.summary), "routes": [r.to_dict() for r in self.routes]}


_LOADED: dict[str, PolicyAgent] = {}


def policy_agent(path: str | Path, engine_config: EngineConfig | None, perception: str | Path | None, camera: str,
                 creep: CreepConfig, safety: SafetyConfig) -> PolicyAgent:  # fmt: skip
    """The learned agent of a model file, loaded once per process (a Ray worker drives many routes with it)."""
    key = repr((str(path), engine_config, str(perception or ""), camera, creep, safety))
    if key not in _LOADED:
        _LOADED[key] = load(path, engine_config, perception).agent(camera, creep, safety)
    return _LOADED[key]


def _agent(agent: str | Path | Model | Agent | Callable[[], Model], camera: str, creep: CreepConfig | None, safety: SafetyConfig | None,
           remote: bool) -> tuple[Callable[[], Agent], dict]:  # fmt: skip
    """A factory of the agent for each route, and what identifies it in ``driver.json``. ``remote``: the
    factory travels to Ray workers, so a model is sent as its files and loaded there."""
    if isinstance(agent, Agent):
        return (lambda: agent), {"agent": f"{type(agent).__module__}.{type(agent).__qualname__}"}
    if agent == "expert":
        return ExpertAgent, {"agent": "expert"}
    model = agent if isinstance(agent, Model) else load(agent) if isinstance(agent, (str, Path)) else agent()
    creep = CreepConfig() if creep is None else creep
    safety = SafetyConfig() if safety is None else safety
    identity = policy_identity(model.engine, model.path, model.perception, camera, creep, safety)
    if remote:
        return partial(policy_agent, model.path, model.engine_config, model.perception, camera, creep, safety), identity
    policy = model.agent(camera, creep, safety)  # loaded once, set up again on every route
    return (lambda: policy), identity


def policy_identity(engine: str, model: str | Path, perception: str | Path | None, camera: str, creep: CreepConfig,
                    safety: SafetyConfig) -> dict:  # fmt: skip
    """The learned agent in ``driver.json``: its model files' contents (not their names) and its settings."""
    return {"agent": "policy", "engine": engine, "model_sha256": file_digest(model), "perception_sha256": file_digest(perception) if perception else "",
            "camera": camera, "creep": asdict(creep), "safety": asdict(safety)}  # fmt: skip


def check_resume(out: Path, identity: dict) -> None:
    """A results folder holds the routes of one driver: resuming it with another (a retrained model under the
    same file name, other simulator settings) would mix their results in one summary. A folder with no route
    finished yet (a start that failed) takes the new driver."""
    path = out / "driver.json"
    if path.is_file() and any(route_finished(p) for p in (out / "routes").glob("*.json")):
        changed = changed_settings(json.loads(path.read_text()), identity)
        if changed:
            raise ConfigError(f"{out}: its routes were driven with another {', '.join(changed)} ({path}); "
                              "use another 'out' folder, or delete this one to drive again")  # fmt: skip
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, identity)


def check_routes(suite: RouteSuite, suite_id: str, routes: list[str], sim: SimConfig) -> None:
    """The routes asked for are in the suite, and its towns are ones the simulator backend can load."""
    unknown = sorted(set(routes) - {r.name for r in suite.routes})
    if unknown:
        raise InputError(f"routes {unknown} are not in suite '{suite.name}' ({suite_id}; it has {', '.join(r.name for r in suite.routes[:5])}, ...)")
    if sim.backend == "embedded":
        for r in suite.routes:
            if not isinstance(r.town, int):
                raise InputError(f"{suite_id}: route '{r.name}': town {r.town!r} is a CARLA map name; sim.backend=embedded needs a town seed (an integer >= 0)")


def drive(
    agent: str | Path | Model | Agent | Callable[[], Model] = "expert",
    suite: str | Path | RouteSuite = DEFAULT_SUITE,
    routes: list[str] | None = None,
    sim: SimConfig | None = None,
    out: str | Path = "runs/drive",
    videos: bool = False,
    traces: bool = False,
    camera: str = "front",
    creep: CreepConfig | None = None,
    workers: int = 1,
    ray: RayConfig | None = None,
    safety: SafetyConfig | None = None,
) -> SuiteResults:
    """Drive ``agent`` over ``suite`` (a file, or a :class:`RouteSuite`) and score every route.

    ``agent``: ``"expert"``, a :class:`Model` (``drivestack.load()``) or a model file driven by the learned
    agent (``camera``, ``creep``, ``safety``: its settings; creeping and the emergency brake are on by
    default, as on the command line), or any :class:`Agent`. ``routes``: only these route names. Each route's record is written to ``out/routes`` as
    it ends; calling again resumes, and a folder driven with another agent or simulator config is refused.
    ``workers`` > 1 drives that many routes at a time as Ray tasks (a local Ray, or the cluster ``ray`` names).
    ``agent`` may also be a function returning a :class:`Model`: it is called once the suite, the routes and
    the ``out`` folder are checked, so bad input is reported before a model loads."""
    sim, ray = sim or SimConfig(), ray or RayConfig()
    if isinstance(suite, RouteSuite):
        suite_id = suite.name
    else:
        suite_id, suite = str(suite), load_suite(suite)
    check_routes(suite, suite_id, routes or [], sim)  # before a model is loaded
    out = ensure_writable(out)
    make_agent, identity = _agent(agent, camera, creep, safety, remote=workers > 1 or bool(ray.cluster()))
    check_resume(out, json.loads(json.dumps({**identity, "suite": suite_id, "sim": asdict(sim)})))  # as driver.json reads back
    results, summary = run_suite(make_agent, suite, sim, out, videos, routes or None, traces, workers, ray)
    return SuiteResults(results, summary, out)


def drive_suite(config: DriveConfig) -> int:
    """The ``drive`` verb: drive, print the table, exit status 0."""
    if config.agent == "expert":
        agent = "expert"
    elif config.engine == "onnx":
        agent = partial(load, config.onnx_model, engine_config=config.engine_config)
    else:
        agent = partial(load, config.model, perception=config.perception or None)
    result = drive(agent, config.suite, config.routes, config.sim, config.out, config.videos, config.traces, config.camera, config.creep,
                   config.workers, config.ray, config.safety)
    print(result.table())
    print(f"results in {config.out}/summary.json")
    return 0


@dataclass
class ExpertEvalConfig:
    routes: int = 50  # (int) number of routes
    towns: list[int] = field(default_factory=lambda: list(range(1000, 1010)))  # (list[int]) town seeds, held out from training
    route_length: float = 300.0  # (float) metres per route
    seed: int = 0  # (int) route i uses episode seed seed*100000 + i
    workers: int = 2  # (int) routes driven at a time, as Ray tasks
    ray: RayConfig = field(default_factory=RayConfig)  # where the workers run: a local Ray by default, or a cluster
    out: str = "runs/expert"  # (str) folder for per-route JSON results and summary.json
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if self.routes < 1 or self.workers < 1 or not self.towns:
            raise ValueError(f"routes and workers must be >= 1 and towns not empty, got {self.routes}, {self.workers}, {self.towns}")


def evaluate_expert(config: ExpertEvalConfig) -> int:
    """The ``expert`` verb: the expert on seeded routes in held-out towns; print the table, exit status 0."""
    suite = generated_suite(f"expert-seed{config.seed}-{config.route_length:g}m", config.towns, config.routes,
                            config.route_length, config.seed)  # fmt: skip
    result = drive("expert", suite, sim=config.sim, out=config.out, workers=config.workers, ray=config.ray)
    print(result.table())
    return 0
