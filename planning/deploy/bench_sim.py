"""Benchmark the embedded simulator (``agent=expert``: steps per second rendering every image, the RGB image alone
and nothing, the expert's time left out) or the closed loop that drives (``agent=policy``: simulator + the learned agent on the fused ONNX
graph, as ``drivestack drive agent=policy`` runs it; frames per second and the split of each step)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from drivestack.common.io import ensure_writable, write_json_atomic
from drivestack.planning.deploy.bench import summarize
from drivestack.planning.deploy.runtime import EngineConfig
from drivestack.planning.predict import SHIPPED_MODEL
from drivestack.sim.agent import render_mode
from drivestack.sim.interface import RGB_ONLY, Observation, RouteSpec
from drivestack.sim.settings import SimConfig, TrafficConfig

SPLIT = ("sim_step", "render", "inference", "postprocess_control")  # closed loop: where a step's time goes
MODES = {"step_render": (True, "step + render"), "step_render_rgb": (RGB_ONLY, "step + RGB"), "step_only": (False, "step only")}  # simulator: what each timed step renders


@dataclass
class BenchSimConfig:
    agent: Literal["expert", "policy"] = "expert"  # (str) expert: simulator steps/s (the expert's time left out) | policy: closed-loop FPS with the learned agent
    steps: int = 1000  # (int) timed steps per mode
    warmup: int = 50  # (int) untimed steps first
    town: int = 1  # (int) town seed
    seed: int = 0  # (int) episode seed
    one_core: bool = True  # (bool) pin the process and the rasterizer to one CPU core (the closed loop is measured with false)
    onnx_model: str = SHIPPED_MODEL  # (str) fused ONNX graph the policy agent drives with (agent=policy)
    camera: str = "front"  # (str) camera the policy agent reads (agent=policy)
    engine_config: EngineConfig = field(default_factory=EngineConfig)  # ONNX Runtime settings (agent=policy)
    out: str = "runs/bench_sim"  # (str) folder for bench_sim.json
    sim: SimConfig = field(default_factory=lambda: SimConfig(traffic=TrafficConfig(vehicles=20, pedestrians=10)))


def _next_episode(sim, agent, obs: Observation) -> Observation:
    """A new route in the same town once the episode is over (its reset is not timed)."""
    if obs.done:
        obs = sim.reset(seed=obs.frame, route=RouteSpec(town=sim.town.config.seed, length=2000.0))
        agent.setup(sim.config)
    return obs


def _simulator_rates(sim, agent, obs: Observation, steps: int, render: bool | str) -> tuple[dict, Observation]:
    """Steps per second inside ``sim.step`` (the agent's time left out), by the wall clock and by the CPU time of
    this thread (which on a shared machine leaves out the time other processes held the core)."""
    wall = cpu = 0.0
    for _ in range(steps):
        control = agent.run_step(obs)
        t0, c0 = time.perf_counter(), time.thread_time()
        obs = sim.step(control, render=render)
        wall += time.perf_counter() - t0
        cpu += time.thread_time() - c0
        obs = _next_episode(sim, agent, obs)
    return {"steps_per_s": steps / wall, "ms_per_step": 1000 * wall / steps, "cpu_steps_per_s": steps / cpu}, obs


def _closed_loop(sim, agent, obs: Observation, steps: int) -> tuple[dict, Observation]:
    """Frames per second of the loop agent -> simulator step rendering what the agent reads (as ``drive`` does),
    and the split of each step."""
    ms = {k: np.zeros(steps) for k in (*SPLIT, "loop")}
    wall = 0.0
    render = render_mode(agent)
    for i in range(steps):
        t0 = time.perf_counter()
        control = agent(obs)
        obs = sim.step(control, render=render)
        ms["loop"][i] = 1000 * (time.perf_counter() - t0)
        wall += ms["loop"][i] / 1000
        ms["sim_step"][i], ms["render"][i] = sim.timings_ms["step"], sim.timings_ms["render"]
        ms["inference"][i], ms["postprocess_control"][i] = agent.debug.timings_ms["model"], agent.debug.timings_ms["control"]
        obs = _next_episode(sim, agent, obs)
    return {"fps": steps / wall, "ms": summarize(ms)}, obs


def bench_sim(config: BenchSimConfig) -> int:
    if config.one_core:
        os.environ["LP_NUM_THREADS"] = "0"  # llvmpipe rasterizes on the calling thread
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.planning.predict import load
    from drivestack.sim.embedded.backend import EmbeddedSimulator

    out = ensure_writable(config.out)
    policy = config.agent == "policy"
    agent = load(config.onnx_model, config.engine_config).agent(config.camera) if policy else ExpertAgent()
    actors = config.sim.traffic.vehicles + config.sim.traffic.pedestrians
    cams = ", ".join(f"{c.name} {c.width}x{c.height}" for c in config.sim.cameras)
    where = "one core" if config.one_core else f"{len(os.sched_getaffinity(0))} cores"
    with EmbeddedSimulator(config.sim) as sim:
        agent.setup(config.sim)
        obs = sim.reset(config.seed, RouteSpec(town=config.town, length=2000.0))
        for _ in range(config.warmup):
            obs = _next_episode(sim, agent, sim.step(agent.run_step(obs)))
        if policy:
            results, obs = _closed_loop(sim, agent, obs, config.steps)
        else:
            results = {}
            for name, (render, _) in MODES.items():
                results[name], obs = _simulator_rates(sim, agent, obs, config.steps, render)
    write_json_atomic(out / "bench_sim.json", {"config": asdict(config), "actors": actors, "cores": where, "results": results})
    print(f"embedded simulator, {actors} actors, cameras: {cams}, {where}")
    if policy:
        print(f"  closed loop with {Path(config.onnx_model).name} ({agent.driver.engine.provider}): {results['fps']:.1f} FPS")
        for k in (*SPLIT, "loop"):
            print(f"  {k:<20}: p50 {results['ms'][k]['p50']:6.2f} ms, p90 {results['ms'][k]['p90']:6.2f} ms")
    else:
        for name, (_, label) in MODES.items():
            r = results[name]
            print(f"  {label:<14}: {r['steps_per_s']:8.1f} steps/s ({r['ms_per_step']:.2f} ms/step; "
                  f"{r['cpu_steps_per_s']:.1f} steps/s of CPU time)")  # fmt: skip
    print(f"wrote {out / 'bench_sim.json'}")
    return 0
