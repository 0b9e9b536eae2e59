"""Long stops of a drive, read from its per-step traces (``drivestack drive traces=true``): each spell the car
stood still, who held it (the red-light stop, the emergency brake, the policy's brake, or the agent's own target
speed), the light it stood at and how much of the time the expert, given the same observations, asked for a
speed above 1 m/s (``drivestack failures`` prints them when the run has traces).

A timeout is time lost standing; this says where and to whom. The expert's label is not all lost time: short of
a red light's line it still rolls up to the line, so the red-light share is shown beside it."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from drivestack.planning.agents.learned import BRAKE_THRESHOLD
from drivestack.planning.agents.red_light import STANDING_SPEED
from drivestack.planning.evaluation.trace import NEAR_LIGHT_M
from drivestack.sim.conventions import TrafficLightState

EXPERT_GOES = 1.0  # m/s: the expert's target speed above which it counts as moving on
HOLDERS = ("red-light stop", "emergency brake", "policy brake", "target speed")
STOP_LIGHTS = (TrafficLightState.RED.name, TrafficLightState.YELLOW.name)  # as the trace writes the light's state


@dataclass
class Stop:
    """One spell standing still."""

    route: str
    start: float  # s
    duration: float  # s
    holder: str  # which of HOLDERS held the car for most of the spell
    red: float  # share of the spell the route's next light was red or yellow, its stop line within NEAR_LIGHT_M
    expert_goes: float  # share of the spell the expert's target speed was above EXPERT_GOES

    @property
    def lost(self) -> float:
        """Seconds of the spell the expert's target speed was above EXPERT_GOES."""
        return self.duration * self.expert_goes


def _holder(row: dict[str, str]) -> str:
    if row["red_light_stop"] == "True":
        return HOLDERS[0]
    if row["emergency_brake"] == "True":
        return HOLDERS[1]
    if float(row["brake_probability"]) > BRAKE_THRESHOLD:  # nan (agents without a brake output) compares False
        return HOLDERS[2]
    return HOLDERS[3]


def _spell(route: str, rows: list[dict[str, str]]) -> Stop:
    start, end = float(rows[0]["time"]), float(rows[-1]["time"])
    dt = (end - start) / max(len(rows) - 1, 1)
    holder = Counter(_holder(r) for r in rows).most_common(1)[0][0]
    share = lambda ok: sum(1 for r in rows if ok(r)) / len(rows)  # noqa: E731
    return Stop(route, start, end - start + dt, holder, share(lambda r: r["light"] in STOP_LIGHTS and float(r["light_distance"]) < NEAR_LIGHT_M),
                share(lambda r: float(r["expert_target_speed"]) > EXPERT_GOES))  # fmt: skip


def read_stops(folder: str | Path, min_s: float = 20.0) -> list[Stop]:
    """The spells of at least ``min_s`` seconds standing still in every trace of ``folder/traces``."""
    stops = []
    for path in sorted(Path(folder, "traces").glob("*.csv")):
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        spell: list[dict[str, str]] = []
        for row in [*rows, None]:
            if row is not None and float(row["speed"]) < STANDING_SPEED:
                spell.append(row)
                continue
            stop = _spell(path.stem, spell) if spell else None
            if stop is not None and stop.duration >= min_s:
                stops.append(stop)
            spell = []
    return stops


def stops_table(stops: list[Stop]) -> str:
    """Markdown: per holder, the spells, their total time, and the time of it the expert's target speed was above
    EXPERT_GOES and the route's light ahead was red or yellow."""
    rows = ["| held by | stops | routes | time standing (s) | of it with the expert's target above 1 m/s (s) | of it at a red light (s) |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for holder in (*HOLDERS, "all"):
        group = [s for s in stops if holder in ("all", s.holder)]
        if not group and holder != "all":
            continue
        name = f"**{holder}**" if holder == "all" else holder
        rows.append(f"| {name} | {len(group)} | {len({s.route for s in group})} | {sum(s.duration for s in group):.0f} | "
                    f"{sum(s.lost for s in group):.0f} | {sum(s.duration * s.red for s in group):.0f} |")  # fmt: skip
    return "\n".join(rows)


def longest_stops(stops: list[Stop], count: int = 10) -> str:
    """Markdown: the ``count`` stops with the most time the expert's target speed was above EXPERT_GOES."""
    rows = ["| route | from (s) | standing (s) | held by | expert's target above 1 m/s | at a red light |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s in sorted(stops, key=lambda s: (-s.lost, s.route, s.start))[:count]:
        rows.append(f"| {s.route} | {s.start:.1f} | {s.duration:.1f} | {s.holder} | {s.expert_goes:.0%} | {s.red:.0%} |")
    return "\n".join(rows)
