"""Benchmark the embedded simulator: steps per second, with and without rendering, on one core."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from drivestack.sim.interface import RouteSpec
from drivestack.sim.settings import SimConfig, TrafficConfig


@dataclass
class BenchSimConfig:
    steps: int = 1000  # (int) timed steps per mode
    warmup: int = 50  # (int) untimed steps first
    town: int = 1  # (int) town seed
    seed: int = 0  # (int) episode seed
    one_core: bool = True  # (bool) pin the process and the rasterizer to one CPU core
    sim: SimConfig = field(default_factory=lambda: SimConfig(traffic=TrafficConfig(vehicles=20, pedestrians=10)))


def _timed(sim, expert, obs, steps: int, render: bool) -> tuple[float, object]:
    """Seconds spent inside sim.step (the expert's time is left out)."""
    total = 0.0
    for _ in range(steps):
        control = expert.run_step(obs)
        t0 = time.perf_counter()
        obs = sim.step(control, render=render)
        total += time.perf_counter() - t0
        if obs.done:
            obs = sim.reset(seed=obs.frame, route=RouteSpec(town=sim.town.config.seed))
            expert.setup(sim.config)
    return total, obs


def bench_sim(config: BenchSimConfig) -> int:
    if config.one_core:
        os.environ["LP_NUM_THREADS"] = "0"  # llvmpipe rasterizes on the calling thread
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    actors = config.sim.traffic.vehicles + config.sim.traffic.pedestrians
    cams = ", ".join(f"{c.name} {c.width}x{c.height}" for c in config.sim.cameras)
    with EmbeddedSimulator(config.sim) as sim:
        expert = ExpertAgent()
        expert.setup(config.sim)
        obs = sim.reset(config.seed, RouteSpec(town=config.town, length=2000.0))
        _, obs = _timed(sim, expert, obs, config.warmup, render=True)
        rendered, obs = _timed(sim, expert, obs, config.steps, render=True)
        physics, obs = _timed(sim, expert, obs, config.steps, render=False)
    print(f"embedded simulator, {actors} actors, cameras: {cams}, {'one core' if config.one_core else 'all cores'}")
    print(f"  step + render : {config.steps / rendered:8.1f} steps/s ({1000 * rendered / config.steps:.2f} ms/step)")
    print(f"  step only     : {config.steps / physics:8.1f} steps/s ({1000 * physics / config.steps:.2f} ms/step)")
    return 0
