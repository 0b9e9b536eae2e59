"""Drive the expert on seeded routes in held-out towns and report leaderboard metrics (resumable)."""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drivestack.common.io import write_json_atomic
from drivestack.planning.evaluation.metrics import RouteResult, summarize
from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import SimConfig
from tqdm import tqdm


@dataclass
class ExpertEvalConfig:
    routes: int = 50  # (int) number of routes
    towns: list[int] = field(default_factory=lambda: list(range(1000, 1010)))  # (list[int]) town seeds, held out from training
    route_length: float = 300.0  # (float) metres per route
    seed: int = 0  # (int) route i uses episode seed seed*100000 + i
    workers: int = 2  # (int) parallel simulator processes
    out: str = "runs/expert"  # (str) folder for per-route JSON results and summary.json
    sim: SimConfig = field(default_factory=SimConfig)


def route_specs(config: ExpertEvalConfig) -> list[tuple[str, int, RouteSpec]]:
    """(name, episode seed, route) for every route of the evaluation."""
    out = []
    for i in range(config.routes):
        town = config.towns[i % len(config.towns)]
        out.append((f"town{town:04d}_route{i:03d}", config.seed * 100000 + i, RouteSpec(town=town, length=config.route_length)))
    return out


def _worker(args) -> dict:
    """Drive one route with the expert (no rendering: it reads the ground truth only)."""
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.planning.evaluation.suite import SuiteRoute, drive_route

    sim_config, name, seed, route = args
    return drive_route(ExpertAgent(), sim_config, SuiteRoute(name=name, town=route.town, seed=seed, length=route.length)).to_dict()


def evaluate_expert(config: ExpertEvalConfig) -> int:
    out = Path(config.out)
    (out / "routes").mkdir(parents=True, exist_ok=True)
    todo = [r for r in route_specs(config) if not (out / "routes" / f"{r[0]}.json").exists()]
    done = config.routes - len(todo)
    jobs = [(config.sim, name, seed, route) for name, seed, route in todo]
    with tqdm(total=config.routes, initial=done, desc="expert routes", unit="route") as bar:
        if config.workers > 1 and len(jobs) > 1:
            with mp.get_context("spawn").Pool(config.workers) as pool:
                for result in pool.imap_unordered(_worker, jobs):
                    _save(out, result)
                    bar.update()
        else:
            for job in jobs:
                _save(out, _worker(job))
                bar.update()
    names = {name for name, _, _ in route_specs(config)}
    results = [RouteResult(**{k: v for k, v in json.loads(p.read_text()).items() if k not in ("penalty", "driving_score")})
               for p in sorted((out / "routes").glob("*.json")) if p.stem in names]
    summary = summarize(results)
    (out / "summary.json").write_text(json.dumps({"config": asdict(config), "summary": asdict(summary)}, indent=2))
    print(format_table(results, summary))
    return 0


def _save(out: Path, result: dict) -> None:
    write_json_atomic(out / "routes" / f"{result['name']}.json", result)


def format_table(results: list[RouteResult], summary) -> str:
    lines = [f"{'route':<22}{'DS':>7}{'RC%':>7}{'penalty':>9}  {'outcome':<10}infractions"]
    for r in results:
        inf = ", ".join(f"{k}={v}" for k, v in r.infractions.items()) or "-"
        lines.append(f"{r.name:<22}{r.driving_score:7.1f}{r.completion:7.1f}{r.penalty:9.3f}  {r.outcome:<10}{inf}")
    per_km = ", ".join(f"{k}={v:.2f}" for k, v in summary.infractions_per_km.items() if v) or "none"
    lines += [
        "",
        f"routes {summary.routes}: driving score {summary.driving_score:.1f}, route completion {summary.route_completion:.1f}%, "
        f"penalty {summary.infraction_penalty:.3f}, {summary.km_driven:.2f} km, outcomes {summary.outcomes}",
        f"infractions per km: {per_km}",
    ]
    return "\n".join(lines)
