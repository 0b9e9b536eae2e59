"""Driving metrics as the CARLA leaderboard (1.0) defines them: route completion, infraction penalty as a
product of coefficients, driving score = completion x penalty, plus infractions per km."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields

from drivestack.planning.evaluation.stats import mean_ci, ratio_ci
from drivestack.sim.conventions import ActorKind
from drivestack.sim.interface import Observation

PENALTY = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
}
COLLISION_KEY = {
    ActorKind.PEDESTRIAN: "collision_pedestrian",
    ActorKind.VEHICLE: "collision_vehicle",
    ActorKind.STATIC: "collision_static",
    ActorKind.TRAFFIC_LIGHT: "collision_static",
}
MIN_COLLISION_SPEED = 0.1  # m/s: contacts while (almost) standing still are not counted
SAME_COLLISION_M = 5.0  # a contact this close to the last counted one is the same collision
ROUTE_ENDS = ("route_deviation", "blocked")  # events that end a route, recorded with where they happened
FLAG_HOLD_S = 1.0  # a drive video shows an infraction's flag this long


def infraction_penalty(counts: dict[str, int], outside_lanes_pct: float = 0.0) -> float:
    """Product of the leaderboard coefficients, one factor per infraction, times (1 - pct outside lanes)."""
    unknown = set(counts) - set(PENALTY)
    if unknown:
        raise ValueError(f"unknown infraction kinds {sorted(unknown)}; known: {sorted(PENALTY)}")
    penalty = math.prod(PENALTY[k] ** n for k, n in counts.items())
    return penalty * (1.0 - min(max(outside_lanes_pct, 0.0), 100.0) / 100.0)


@dataclass
class Infraction:
    """One counted infraction (a :data:`PENALTY` kind) or route end (:data:`ROUTE_ENDS`): when and where the ego
    was; for collisions the other actor, for red lights the light (0: not known)."""

    kind: str
    frame: int
    time: float  # game time, seconds
    x: float
    y: float
    z: float = 0.0
    actor_kind: str = ""  # collisions: vehicle | pedestrian | static | traffic_light
    actor_id: int = 0

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ")


@dataclass
class RouteResult:
    name: str
    route_length: float  # metres
    completion: float  # route completion, percent
    infractions: dict[str, int]
    outside_lanes_pct: float  # percent of the distance driven outside route lanes
    outcome: str  # completed | deviated | blocked | timeout
    duration_s: float
    distance_m: float
    events: list[Infraction] = field(default_factory=list)  # the infractions counted and the route's end, in order
    agent_stats: dict[str, float | int | None] = field(default_factory=dict)  # what the agent counted on the route (Agent.stats)

    def __post_init__(self) -> None:
        self.events = [e if isinstance(e, Infraction) else Infraction(**e) for e in self.events]  # as read from JSON

    @property
    def penalty(self) -> float:
        return infraction_penalty(self.infractions, self.outside_lanes_pct)

    @property
    def driving_score(self) -> float:
        return self.completion * self.penalty

    def to_dict(self) -> dict:
        return {**asdict(self), "penalty": self.penalty, "driving_score": self.driving_score}

    @classmethod
    def from_record(cls, data: dict) -> RouteResult:
        """The result of a route record as ``to_dict`` wrote it (derived and bookkeeping keys dropped)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class RouteScorer:
    """Folds the observations of one route into a :class:`RouteResult` (leaderboard rules)."""

    def __init__(self, name: str, timeout_s: float | None = None):
        self.name = name
        self.timeout_s = timeout_s
        self.events: list[Infraction] = []
        self.distance = 0.0
        self.outside = 0.0
        self._outside_now = False
        self._seen_actors: set[int] = set()
        self._last_collision: tuple[float, float] | None = None
        self._last_xy: tuple[float, float] | None = None
        self.obs: Observation | None = None

    def update(self, obs: Observation) -> None:
        """Score one step: the only place that decides what counts as an infraction."""
        x, y = obs.ego.pose.x, obs.ego.pose.y
        step = math.hypot(x - self._last_xy[0], y - self._last_xy[1]) if self._last_xy else 0.0
        self._last_xy = (x, y)
        self.distance += step
        e = obs.events
        self._outside_now = e.off_road or e.lane_invasion
        if self._outside_now:
            self.outside += step
        if e.red_light:  # the light that governed the lane before the stop line was crossed
            self._record("red_light", obs, actor_id=self.obs.traffic_light.actor_id if self.obs else 0)
        for c in e.collisions:
            if c.actor_id in self._seen_actors or abs(obs.ego.speed) < MIN_COLLISION_SPEED:
                continue
            if self._last_collision and math.hypot(x - self._last_collision[0], y - self._last_collision[1]) < SAME_COLLISION_M:
                continue
            self._seen_actors.add(c.actor_id)
            self._last_collision = (x, y)
            self._record(COLLISION_KEY[c.kind], obs, c.kind.name.lower(), c.actor_id)
        for kind in ROUTE_ENDS:
            if getattr(e, kind):
                self._record(kind, obs)
        self.obs = obs

    def _record(self, kind: str, obs: Observation, actor_kind: str = "", actor_id: int = 0) -> None:
        p = obs.ego.pose
        self.events.append(Infraction(kind, obs.frame, obs.time, p.x, p.y, p.z, actor_kind, actor_id))

    def flags(self) -> list[str]:
        """What a drive video flags on the last step's frame: the infractions of the last :data:`FLAG_HOLD_S`
        seconds, and OUTSIDE LANES while the ego is."""
        now = self.obs.time if self.obs else 0.0
        recent = [e.label.upper() for e in self.events if now - e.time < FLAG_HOLD_S]
        return list(dict.fromkeys(recent)) + (["OUTSIDE LANES"] if self._outside_now else [])

    def marks(self) -> list[tuple[str, float, float]]:
        """The counted infractions and route ends as a map's marks: (label, x, y)."""
        return [(e.label, e.x, e.y) for e in self.events]

    @property
    def timed_out(self) -> bool:
        return self.timeout_s is not None and self.obs is not None and self.obs.time >= self.timeout_s

    @property
    def done(self) -> bool:
        return self.obs is not None and (self.obs.done or self.timed_out)

    def result(self) -> RouteResult:
        obs = self.obs
        if obs is None:
            raise RuntimeError(f"route {self.name}: no observation recorded")
        e = obs.events
        completion = 100.0 * min(obs.route_progress / max(obs.route_length, 1e-6), 1.0)
        if e.route_completed or completion > 99.0:
            completion = 100.0
        outcome = "completed" if e.route_completed else "deviated" if e.route_deviation else "blocked" if e.blocked else "timeout"
        return RouteResult(
            name=self.name,
            route_length=obs.route_length,
            completion=completion,
            infractions=dict(Counter(ev.kind for ev in self.events if ev.kind in PENALTY)),
            outside_lanes_pct=100.0 * self.outside / max(self.distance, 1e-6),
            outcome=outcome,
            duration_s=obs.time,
            distance_m=self.distance,
            events=list(self.events),
        )


def route_timeout(route_length: float) -> float:
    """Leaderboard 1.0 route timeout: 0.8 s per metre plus 5 s."""
    return 0.8 * route_length + 5.0


@dataclass
class Summary:
    routes: int
    driving_score: float
    route_completion: float
    infraction_penalty: float
    infractions_per_km: dict[str, float] = field(default_factory=dict)
    km_driven: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)  # 95 % bootstrap CIs over routes: driving_score, route_completion, infractions_per_km


def summarize(results: list[RouteResult]) -> Summary:
    """Means over routes, as the leaderboard reports them, and infractions per km driven."""
    if not results:
        raise ValueError("no route results to summarize")
    n = len(results)
    km = sum(r.distance_m for r in results) / 1000.0
    per_km = {k: sum(r.infractions.get(k, 0) for r in results) / max(km, 1e-9) for k in PENALTY}
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return Summary(
        routes=n,
        driving_score=sum(r.driving_score for r in results) / n,
        route_completion=sum(r.completion for r in results) / n,
        infraction_penalty=sum(r.penalty for r in results) / n,
        infractions_per_km=per_km,
        km_driven=km,
        outcomes=outcomes,
        ci={"driving_score": mean_ci([r.driving_score for r in results]), "route_completion": mean_ci([r.completion for r in results]),
            "infractions_per_km": ratio_ci([sum(r.infractions.get(k, 0) for k in PENALTY) for r in results],
                                           [r.distance_m / 1000.0 for r in results])},
    )  # fmt: skip


def format_table(results: list[RouteResult], summary: Summary) -> str:
    """One line per route and the summary, as the drive commands print them."""
    lines = [f"{'route':<22}{'DS':>7}{'RC%':>7}{'penalty':>9}  {'outcome':<10}infractions"]
    for r in results:
        inf = ", ".join(f"{k}={v}" for k, v in r.infractions.items()) or "-"
        lines.append(f"{r.name:<22}{r.driving_score:7.1f}{r.completion:7.1f}{r.penalty:9.3f}  {r.outcome:<10}{inf}")
    per_km = ", ".join(f"{k}={v:.2f}" for k, v in summary.infractions_per_km.items() if v) or "none"
    ci = {k: f" (95 % CI {lo:.1f}-{hi:.1f})" for k, (lo, hi) in summary.ci.items()}
    total = sum(summary.infractions_per_km.values())
    lines += [
        "",
        f"routes {summary.routes}: driving score {summary.driving_score:.1f}{ci.get('driving_score', '')}, "
        f"route completion {summary.route_completion:.1f}%{ci.get('route_completion', '')}, "
        f"penalty {summary.infraction_penalty:.3f}, {summary.km_driven:.2f} km, outcomes {summary.outcomes}",
        f"infractions per km: {total:.2f}" + (f" (95 % CI {summary.ci['infractions_per_km'][0]:.2f}-{summary.ci['infractions_per_km'][1]:.2f})"
                                               if "infractions_per_km" in summary.ci else "") + f": {per_km}",
    ]  # fmt: skip
    return "\n".join(lines)
