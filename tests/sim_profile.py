"""Where a rendered step of the embedded simulator spends its time: thread CPU milliseconds per step inside each
of its main functions (cumulative, so nested ones count in their callers too), on one core, with the expert
driving the bench-sim scene (town 1, 20 vehicles + 10 pedestrians, one 320x160 camera).

    python tests/sim_profile.py [steps] [rgb]

``rgb`` renders the RGB image alone (``render=RGB_ONLY``, what ``drive`` renders for the learned agent).

CPU time of this thread rather than the wall clock, so that other processes on a shared machine count less;
the wrappers add about a microsecond per call. Functions missing from the version imported are skipped, so
the same script profiles an older checkout (``PYTHONPATH=<its package>``).
"""

from __future__ import annotations

import collections
import importlib
import os
import sys
import time

FUNCTIONS = [  # (module, attribute path) in the order of a step
    ("backend", "EmbeddedSimulator.step"),
    ("traffic", "Traffic.step_vehicles"),
    ("traffic", "Traffic.step_walkers"),
    ("events", "EventMonitor.update"),
    ("backend", "EmbeddedSimulator._observe"),
    ("backend", "EmbeddedSimulator._render"),
    ("backend", "EmbeddedSimulator.dynamic_boxes"),
    ("render", "Renderer.render"),
    ("render", "_Target.in_view"),
    ("render", "Renderer._upload"),
    ("render", "_Target.read"),
    ("backend", "visible_boxes"),
    ("town_scene", "TownScene.lamp_colors"),
    ("backend", "EmbeddedSimulator.light_states"),
    ("backend", "EmbeddedSimulator._actors"),
    ("backend", "target_point"),
]


def _wrap(owner, name: str, label: str, spent: collections.Counter) -> None:
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - start

    setattr(owner, name, timed)


def profile(steps: int, warmup: int = 50, rgb_only: bool = False) -> dict[str, float]:
    """Milliseconds of thread CPU time per rendered step, per function of ``FUNCTIONS``."""
    os.environ["LP_NUM_THREADS"] = "0"  # llvmpipe rasterizes on the calling thread, which is timed
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from drivestack.planning.agents.expert import ExpertAgent
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.interface import RGB_ONLY, RouteSpec
    from drivestack.sim.settings import SimConfig, TrafficConfig

    spent: collections.Counter = collections.Counter()
    for module, path in FUNCTIONS:
        owner = importlib.import_module(f"drivestack.sim.embedded.{module}")
        *classes, name = path.split(".")
        for c in classes:
            owner = getattr(owner, c, None)
        if owner is not None and hasattr(owner, name):
            _wrap(owner, name, path, spent)
    config = SimConfig(traffic=TrafficConfig(vehicles=20, pedestrians=10))
    with EmbeddedSimulator(config) as sim:
        expert = ExpertAgent()
        expert.setup(config)
        obs = sim.reset(0, RouteSpec(town=1, length=2000.0))
        render = RGB_ONLY if rgb_only else True
        for _ in range(warmup):
            obs = sim.step(expert.run_step(obs), render=render)
        spent.clear()
        for _ in range(steps):
            obs = sim.step(expert.run_step(obs), render=render)
    return {path: 1000 * spent[path] / steps for _, path in FUNCTIONS if path in spent}


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    for path, ms in profile(steps, rgb_only="rgb" in sys.argv[2:]).items():
        print(f"{path:<34} {ms:7.3f} ms/step")
