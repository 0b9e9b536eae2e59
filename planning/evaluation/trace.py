"""Per-step trace of a drive: what the agent decided next to the expert's label for the same observation,
with the light ahead, as CSV and a plot (``drivestack drive traces=true``).

It answers questions the driving score cannot, such as "does the policy keep braking at a green light?":
the expert labels every observation the agent visits (as in DAgger, but only recorded), so each row pairs
the agent's target speed and brake probability with what the expert would have done.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.sim.agent import Agent
from drivestack.sim.conventions import TrafficLightState
from drivestack.sim.interface import Observation, VehicleControl
from drivestack.sim.settings import SimConfig


@dataclass
class TraceRow:
    time: float  # s
    speed: float  # m/s
    command: str  # RoadOption name
    light: str  # state of the next light on the route
    light_distance: float  # m to its stop line (inf: none ahead)
    target_speed: float  # m/s, what the agent asked its controller for
    brake_probability: float  # the policy's brake output (nan for agents without one)
    creeping: bool  # the agent drives off by the creep rule (drivestack.planning.agents.creep), not by the policy
    emergency_brake: bool  # the agent brakes by its time-to-collision layer (drivestack.planning.agents.safety)
    red_light_stop: bool  # the agent's target speed is capped by its red-light layer (drivestack.planning.agents.red_light)
    expert_target_speed: float  # m/s, the expert's label for the same observation
    throttle: float
    steer: float
    brake: float
    collision: bool
    red_light: bool
    outside_lanes: bool  # off the road or in a lane of the opposite direction (scored as the leaderboard's "outside route lanes")


class DriveTrace:
    """Collects one :class:`TraceRow` per step; an expert of its own labels each observation."""

    def __init__(self, sim_config: SimConfig) -> None:
        self.expert = ExpertAgent()
        self.expert.setup(sim_config)
        self.rows: list[TraceRow] = []

    def record(self, obs: Observation, agent: Agent, control: VehicleControl) -> None:
        """Call with the observation the agent acted on and the control it returned."""
        self.expert.run_step(obs)
        debug = agent.debug
        self.rows.append(TraceRow(
            time=obs.time, speed=obs.ego.speed, command=obs.command.name, light=obs.traffic_light.state.name,
            light_distance=obs.traffic_light.distance,
            target_speed=float("nan") if debug.target_speed is None else debug.target_speed,
            brake_probability=float("nan") if debug.brake_probability is None else debug.brake_probability,
            creeping=debug.creeping, emergency_brake=debug.emergency_brake, red_light_stop=debug.red_light_stop,
            expert_target_speed=self.expert.target_speed, throttle=control.throttle, steer=control.steer,
            brake=control.brake, collision=bool(obs.events.collisions), red_light=obs.events.red_light,
            outside_lanes=obs.events.off_road or obs.events.lane_invasion,
        ))  # fmt: skip

    def write(self, path: Path) -> None:
        """``path`` (CSV, one row per step) and ``path`` with .png (speeds, brake probability, lights)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, [field.name for field in fields(TraceRow)])
            writer.writeheader()
            writer.writerows(asdict(row) for row in self.rows)
        plot_trace(self.rows, path.with_suffix(".png"), path.stem)


LIGHT_SHADES = {TrafficLightState.RED.name: "#ff9999", TrafficLightState.YELLOW.name: "#ffe680", TrafficLightState.GREEN.name: "#99dd99"}
NEAR_LIGHT_M = 30.0  # the light ahead is shaded in the plot when its stop line is closer than this


def plot_trace(rows: list[TraceRow], path: Path, title: str) -> None:
    """Speed, the agent's and the expert's target speed, and the brake probability over time; the light
    ahead (when near) shades the background; collisions, red-light infractions and steps outside the lanes
    are marked along the time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([r.time for r in rows])
    fig, (ax, ax_brake) = plt.subplots(2, 1, figsize=(11, 5), dpi=100, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.05
    for r in rows:
        if r.light_distance < NEAR_LIGHT_M and r.light in LIGHT_SHADES:
            for a in (ax, ax_brake):
                a.axvspan(r.time - dt / 2, r.time + dt / 2, color=LIGHT_SHADES[r.light], lw=0)
    ax.plot(t, [r.speed for r in rows], "k", label="speed")
    ax.plot(t, [r.target_speed for r in rows], "b", label="agent target speed")
    ax.plot(t, [r.expert_target_speed for r in rows], "m--", label="expert target speed")
    for name, marker, color in (("collision", "x", "red"), ("red_light", "o", "darkred"), ("outside_lanes", "|", "orange")):
        hits = [r.time for r in rows if getattr(r, name)]
        ax.plot(hits, [0.0] * len(hits), marker, color=color, ls="", label=name.replace("_", " ") if hits else None)
    ax.set_ylabel("m/s")
    ax.set_title(f"{title} (background: light ahead within {NEAR_LIGHT_M:.0f} m)")
    ax.legend(fontsize=7, loc="upper right")
    ax_brake.plot(t, [r.brake_probability for r in rows], "b")
    marked = False
    for name, level, color in (("creeping", 1.0, "darkviolet"), ("emergency_brake", 0.9, "red"), ("red_light_stop", 0.8, "darkorange")):
        times = [r.time for r in rows if getattr(r, name)]
        ax_brake.plot(times, [level] * len(times), "|", color=color, label=name.replace("_", " ") if times else None)
        marked |= bool(times)
    if marked:
        ax_brake.legend(fontsize=7, loc="upper right")
    ax_brake.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax_brake.set_ylim(-0.05, 1.05)
    ax_brake.set_ylabel("brake prob.")
    ax_brake.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
