"""Closed-loop evaluation: drive an agent over a route suite, score each route as the leaderboard does,
write each route's record as soon as it ends (a crash keeps the finished ones; a re-run resumes),
optionally with a drive video and a top-down map."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from drivestack.common.config import load_config
from drivestack.common.io import write_json_atomic
from drivestack.common.parallel import RayConfig, TaskError, in_ray_task, run_tasks
from drivestack.planning.evaluation.leaderboard import write_leaderboard
from drivestack.planning.evaluation.metrics import RouteResult, RouteScorer, Summary, route_timeout, summarize
from drivestack.sim import make_simulator
from drivestack.sim.agent import Agent, AgentDebug, render_mode
from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import SimConfig, TrafficConfig
from tqdm import tqdm


@dataclass
class SuiteRoute:
    name: str
    town: int | str  # embedded: town seed; CARLA: map name
    seed: int  # episode seed: traffic, appearance and (without waypoints) the random route
    length: float = 250.0  # metres of a random route
    waypoints: list[tuple[float, float]] = field(default_factory=list)  # trip points; empty: random route
    traffic: dict[str, float] = field(default_factory=dict)  # overrides of sim.traffic for this route

    def __post_init__(self) -> None:
        problems = []
        if not ((isinstance(self.town, int) and self.town >= 0) or (isinstance(self.town, str) and self.town != "")):
            problems.append(f"town must be a non-negative integer (embedded town seed) or a CARLA map name, got {self.town!r}")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if self.length <= 0:
            problems.append(f"length must be > 0 m, got {self.length}")
        if traffic := unknown_traffic(self.traffic):
            problems.append(traffic)
        if problems:
            raise ValueError(f"route '{self.name}': {'; '.join(problems)}")


def unknown_traffic(traffic: dict[str, float]) -> str:
    """What is wrong with the keys of a route's ``traffic`` overrides ("" when they all are sim.traffic keys)."""
    unknown = sorted(set(traffic) - {f.name for f in fields(TrafficConfig)})
    return f"unknown traffic keys {unknown} (valid: {', '.join(f.name for f in fields(TrafficConfig))})" if unknown else ""


@dataclass
class RouteMix:
    """One kind of route in a generated suite."""

    name: str  # (str) part of each route's name, e.g. dense
    share: float = 1.0  # (float) relative frequency among the mixes
    length: float = 250.0  # (float) metres per route
    traffic: dict[str, float] = field(default_factory=dict)  # overrides of sim.traffic, e.g. {vehicles: 60}
    green_s: list[float] = field(default_factory=list)  # (list[float]) [low, high]: each route draws its green time from it; empty = sim.traffic's

    def __post_init__(self) -> None:
        if traffic := unknown_traffic(self.traffic):
            raise ValueError(f"mix '{self.name}': {traffic}")
        if self.share <= 0 or self.length <= 0 or (self.green_s and not (len(self.green_s) == 2 and 0 < self.green_s[0] <= self.green_s[1])):
            raise ValueError(f"mix '{self.name}': share and length must be > 0 and green_s [low, high] with 0 < low <= high")


@dataclass
class GeneratedRoutes:
    """Routes drawn from a seed: ``routes_per_town`` in each town, each of a mix drawn by share."""

    towns: list[int]  # (list[int]) town seeds
    routes_per_town: int  # (int) routes in each town
    seed: int  # (int) seed of every draw: the same spec gives the same routes
    mixes: list[RouteMix]  # the kinds of route and how often each is drawn
    prefix: str = "g"  # (str) route names are <prefix><index>_<mix>_t<town>

    def __post_init__(self) -> None:
        if not self.towns or self.routes_per_town < 1 or not self.mixes:
            raise ValueError("generate needs towns, routes_per_town >= 1 and at least one mix")

    def routes(self) -> list[SuiteRoute]:
        rng = np.random.default_rng(self.seed)
        shares = np.array([m.share for m in self.mixes]) / sum(m.share for m in self.mixes)
        routes = []
        for town in self.towns:
            for _ in range(self.routes_per_town):
                mix = self.mixes[int(rng.choice(len(self.mixes), p=shares))]
                traffic = dict(mix.traffic)
                if mix.green_s:
                    traffic["green_s"] = round(float(rng.uniform(*mix.green_s)), 1)
                routes.append(SuiteRoute(name=f"{self.prefix}{len(routes):03d}_{mix.name}_t{town}", town=town,
                                         seed=int(rng.integers(0, 2**31 - 1)), length=mix.length, traffic=traffic))  # fmt: skip
        return routes


@dataclass
class RouteSuite:
    """Named routes: listed one by one (``routes``), or generated from a seed (``generate``)."""

    name: str  # (str) the suite's name and version, e.g. embedded-test-v1
    routes: list[SuiteRoute] = field(default_factory=list)
    generate: GeneratedRoutes | None = None

    def __post_init__(self) -> None:
        if self.generate is not None:
            if self.routes:
                raise ValueError(f"suite '{self.name}': give routes or generate, not both")
            self.routes = self.generate.routes()
        if not self.routes:
            raise ValueError(f"suite '{self.name}' has no routes")
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique in suite '{self.name}'")


def load_suite(path: str | Path) -> RouteSuite:
    return load_config(RouteSuite, path)


def route_sim_config(sim: SimConfig, route: SuiteRoute) -> SimConfig:
    """``sim`` with the route's traffic overrides (their keys are checked when the route is made)."""
    traffic = replace(sim.traffic, **{k: type(getattr(sim.traffic, k))(v) for k, v in route.traffic.items()})
    return replace(sim, traffic=traffic)


def drive_route(
    agent: Agent,
    sim_config: SimConfig,
    route: SuiteRoute,
    video: Path | None = None,
    progress: Callable[..., Any] | None = None,
    trace: Path | None = None,
) -> RouteResult:
    """Drive one route with ``agent``; render what the agent reads (:func:`~drivestack.sim.agent.render_mode`), or
    everything when a video is written.
    ``progress``: a tqdm-like class; a bar of it counts the metres of the route done (``tqdm``, or Ray's
    ``tqdm_ray`` in a Ray task). With ``trace``, write the per-step trace (CSV and plot,
    :mod:`drivestack.planning.evaluation.trace`) there."""
    from drivestack.planning.evaluation.trace import DriveTrace
    from drivestack.sim.visualize import VideoWriter, render_frame

    config = route_sim_config(sim_config, route)
    render = True if video is not None else render_mode(agent)
    trail = []
    with make_simulator(config) as sim, VideoWriter(video, fps=10) if video else _NoVideo() as writer:
        obs = sim.reset(route.seed, RouteSpec(town=route.town, waypoints=route.waypoints, length=route.length, name=route.name))
        agent.setup(config)
        scorer = RouteScorer(route.name, timeout_s=route_timeout(obs.route_length))
        steps = DriveTrace(config) if trace else None
        bar = progress(total=int(obs.route_length), desc=f"  {route.name}", unit="m") if progress else None
        try:
            while not scorer.done:
                control = agent(obs)
                if steps:
                    steps.record(obs, agent, control)
                if video and obs.frame % 2 == 0 and obs.cameras:
                    debug = agent.debug
                    writer.write(render_frame(obs, waypoints=debug.waypoints, notes=_notes(debug),
                                              predicted=agent.perceived(), flags=scorer.flags()))  # fmt: skip
                obs = sim.step(control, render=render)
                scorer.update(obs)
                trail.append((obs.ego.pose.x, obs.ego.pose.y))
                if bar is not None and int(obs.route_progress) > bar.n:
                    bar.update(int(obs.route_progress) - bar.n)
        finally:
            agent.destroy()
            if bar is not None:
                bar.close()
            if steps:
                steps.write(trace)
        town_map = sim.top_down_map(np.array(trail), scorer.marks()) if video else None
        if town_map is not None:
            cv2.imwrite(str(video.with_suffix(".png")), town_map[:, :, ::-1])
    result = scorer.result()
    result.agent_stats = agent.stats()
    return result


def _notes(debug: AgentDebug) -> list[str] | None:
    """The video's notes on what overrode the policy this step."""
    notes = ["CREEP"] * debug.creeping + ["EMERGENCY BRAKE"] * debug.emergency_brake + ["RED LIGHT STOP"] * debug.red_light_stop
    return notes or None


class _NoVideo:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def generated_suite(name: str, towns: list[int], routes: int, length: float, seed: int) -> RouteSuite:
    """``routes`` random routes of ``length`` metres, cycling through ``towns``; route i has episode seed
    ``seed * 100000 + i``."""
    return RouteSuite(name, [SuiteRoute(name=f"town{towns[i % len(towns)]:04d}_route{i:03d}", town=towns[i % len(towns)],
                                        seed=seed * 100000 + i, length=length) for i in range(routes)])  # fmt: skip


def _drive_job(make_agent: Callable[[], Agent], sim_config: SimConfig, route: SuiteRoute, video: Path | None,
               trace: Path | None, progress: bool) -> RouteResult:  # fmt: skip
    """One route, in this process or as a Ray task, with a bar of its metres when ``progress``."""
    bar = None
    if progress:
        if in_ray_task():
            from ray.experimental.tqdm_ray import tqdm as bar  # drawn by the driving process, one line per worker
        else:
            bar = partial(tqdm, leave=False, position=1)
    return drive_route(make_agent(), sim_config, route, video, progress=bar, trace=trace)


def run_suite(
    make_agent: Callable[[], Agent],
    suite: RouteSuite,
    sim_config: SimConfig,
    out: Path,
    videos: bool = False,
    only: list[str] | None = None,
    traces: bool = False,
    workers: int = 1,
    ray: RayConfig | None = None,
    progress: bool = True,
) -> tuple[list[RouteResult], Summary]:
    """Drive every route not yet recorded under ``out/routes`` (``only``: names :func:`drive` has checked
    against the suite); return all records and their summary.
    ``videos``: an MP4 and a map per route in ``out/videos``; ``traces``: a per-step CSV and plot in ``out/traces``;
    ``workers`` > 1 (or a cluster in ``ray``): each route a Ray task, ``make_agent`` sent to the workers. A
    route whose worker died on every try stays unfinished and is named in the error raised at the end.
    ``progress``: a bar of routes with the running mean driving score and completion, and one of metres per
    route being driven."""
    routes_dir = out / "routes"
    routes_dir.mkdir(parents=True, exist_ok=True)
    routes = [r for r in suite.routes if not only or r.name in only]
    records = {r.name: finished_result(routes_dir / f"{r.name}.json") for r in routes}  # None: not driven to its end
    todo = [r for r in routes if records[r.name] is None]
    jobs = [(make_agent, sim_config, r, out / "videos" / f"{r.name}.mp4" if videos else None,
             out / "traces" / f"{r.name}.csv" if traces else None, progress) for r in todo]  # fmt: skip
    for route in todo:
        write_json_atomic(routes_dir / f"{route.name}.json", {"name": route.name, "status": "started"})
    lost = []
    done = [result for result in records.values() if result is not None]
    with tqdm(total=len(routes), initial=len(done), desc=f"drive {suite.name}", unit="route", disable=not progress) as bar:
        bar.set_postfix_str(running_summary(done))
        for job, result in run_tasks(_drive_job, jobs, workers, ray, name=lambda job: f"route {job[2].name}"):
            if isinstance(result, TaskError):
                tqdm.write(str(result))
                lost.append(job[2].name)
                continue
            write_json_atomic(routes_dir / f"{result.name}.json", {"status": "finished", **result.to_dict()})
            records[result.name] = result
            done.append(result)
            bar.set_postfix_str(running_summary(done), refresh=False)
            bar.update()
    if lost:
        raise TaskError(f"{out}: routes {lost} were not driven (their workers died); run the same command again to drive them")
    results = [records[r.name] for r in routes]
    summary = summarize(results)
    write_json_atomic(out / "summary.json", {"suite": suite.name, "summary": asdict(summary),
                                             "routes": [r.to_dict() for r in results]})
    write_leaderboard(results, out / "leaderboard.json")
    return results, summary


def running_summary(results: list[RouteResult]) -> str:
    """The routes finished so far, for a progress bar: mean driving score and route completion."""
    if not results:
        return ""
    n = len(results)
    return f"DS {sum(r.driving_score for r in results) / n:.1f} RC {sum(r.completion for r in results) / n:.1f}%"


def _finished_record(path: Path) -> dict | None:
    """The route record at ``path`` as stored, when it is of a route driven to its end, else None."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data if data.get("status") == "finished" else None


def route_finished(path: Path) -> bool:
    """Whether the route record at ``path`` is of a route driven to its end."""
    return _finished_record(path) is not None


def finished_result(path: Path) -> RouteResult | None:
    """The route record at ``path`` when it is of a route driven to its end, else None."""
    data = _finished_record(path)
    return None if data is None else RouteResult.from_record(data)
