"""Procedural towns: a jittered road grid with curved roads, multi-lane two-way roads, junctions,
a lane graph (lanes and junction connectors with RoadOption), traffic-light timing and sidewalks.

Everything derives from ``TownConfig.seed``; geometry is in CARLA's world frame (x, y, metres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from drivestack.sim.conventions import RoadOption, TrafficLightState
from drivestack.sim.geometry import Polyline, cubic_bezier, quadratic_bezier, resample, right_normals, wrap_angle
from drivestack.sim.settings import TownConfig, TrafficConfig

STOP_LINE_SETBACK = 4.5  # metres from the junction edge to the stop line (the crosswalk lies between)
CROSSWALK_WIDTH = 3.0


@dataclass
class Road:
    id: int
    a: int  # junction at the start of the centreline
    b: int  # junction at the end
    lanes: int  # lanes per direction
    center: np.ndarray  # (N, 2) centreline from a to b, trimmed at both junctions
    half_width: float  # road surface half width (all lanes)


@dataclass
class Lane:
    """A drivable lane: a road lane (``road`` set) or a junction connector (``junction`` set)."""

    id: int
    line: Polyline
    road: int | None = None
    junction: int | None = None
    forward: bool = True  # road lanes: direction a -> b
    index: int = 0  # road lanes: 0 next to the centre line
    option: RoadOption = RoadOption.LANEFOLLOW
    successors: list[int] = field(default_factory=list)
    left: int | None = None  # adjacent lane, same direction
    right: int | None = None
    end_junction: int | None = None  # road lanes: the junction they lead into
    source: int | None = None  # connectors: the incoming lane

    @property
    def stop_s(self) -> float:
        """Arc length of the stop line on a road lane."""
        return max(self.line.length - STOP_LINE_SETBACK, 0.0)


@dataclass
class Junction:
    id: int
    center: np.ndarray
    radius: float
    roads: list[int] = field(default_factory=list)  # arms, sorted by angle
    lit: bool = False
    phase_offset: float = 0.0


@dataclass
class Sidewalk:
    """A walkable polyline along one side of a road (side +1: right of a->b, -1: left)."""

    id: int
    road: int
    side: int
    line: Polyline


@dataclass
class LightHead:
    """A traffic light governing the lanes of one road arriving at one junction."""

    actor_id: int
    junction: int
    road: int
    arm: int  # index of the road among the junction's arms (its phase slot)
    x: float
    y: float
    yaw: float  # radians, the direction the lamps face
    far: bool = False  # the head across the junction (larger, on a taller pole)


class Town:
    """Road network and lane graph of one procedural town."""

    def __init__(self, config: TownConfig, traffic: TrafficConfig | None = None):
        self.config = config
        self.traffic = traffic or TrafficConfig()
        rng = np.random.default_rng(config.seed)
        self.junctions: list[Junction] = []
        self.roads: list[Road] = []
        self.lanes: list[Lane] = []
        self.sidewalks: list[Sidewalk] = []
        self.lights: list[LightHead] = []
        self._build_graph(rng)
        self._build_roads(rng)
        self._build_lanes()
        self._build_connectors()
        self._build_sidewalks()
        self._build_lights()
        self.road_lanes = [lane.id for lane in self.lanes if lane.road is not None]
        self._lane_points = np.concatenate([self.lanes[i].line.points for i in self.road_lanes])
        self._lane_owner = np.concatenate([np.full(len(self.lanes[i].line.points), i) for i in self.road_lanes])
        self._near_heads = {(l.junction, l.arm): l for l in reversed(self.lights)}  # the first head of each arm
        pts = np.concatenate([j.center[None] for j in self.junctions])
        margin = 45.0
        self.bounds = (pts[:, 0].min() - margin, pts[:, 1].min() - margin, pts[:, 0].max() + margin, pts[:, 1].max() + margin)

    # -- construction ---------------------------------------------------------------------------
    def _build_graph(self, rng: np.random.Generator) -> None:
        c, n = self.config, self.config.grid
        ids = {}
        for i in range(n):
            for j in range(n):
                center = np.array([i * c.block, j * c.block]) + rng.uniform(-c.jitter, c.jitter, 2)
                ids[i, j] = len(self.junctions)
                self.junctions.append(Junction(id=ids[i, j], center=center, radius=0.0))
        edges = [(ids[i, j], ids[i + 1, j]) for i in range(n - 1) for j in range(n)]
        edges += [(ids[i, j], ids[i, j + 1]) for i in range(n) for j in range(n - 1)]
        order = rng.permutation(len(edges))
        kept = set(range(len(edges)))
        to_remove = int(round(c.removed_fraction * len(edges)))
        for k in order:
            if to_remove == 0:
                break
            a, b = edges[k]
            degree = lambda v: sum(1 for e in kept if v in edges[e])  # noqa: E731
            if degree(a) < 4 or degree(b) < 4:
                continue
            if self._connected(edges, kept - {k}):
                kept.discard(k)
                to_remove -= 1
        self._edges = [edges[k] for k in sorted(kept)]

    def _connected(self, edges: list[tuple[int, int]], kept: set[int]) -> bool:
        adj: dict[int, list[int]] = {}
        for k in kept:
            a, b = edges[k]
            adj.setdefault(a, []).append(b)
            adj.setdefault(b, []).append(a)
        seen, stack = {0}, [0]
        while stack:
            for v in adj.get(stack.pop(), []):
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        return len(seen) == len(self.junctions)

    def _build_roads(self, rng: np.random.Generator) -> None:
        c = self.config
        lanes = {e: int(rng.integers(1, c.max_lanes + 1)) for e in self._edges}
        for jn in self.junctions:
            widths = [lanes[e] * c.lane_width for e in self._edges if jn.id in e]
            jn.radius = 1.15 * (max(widths) + c.sidewalk_width) + 1.5
        for a, b in self._edges:
            pa, pb = self.junctions[a].center, self.junctions[b].center
            mid, d = (pa + pb) / 2, pb - pa
            length = float(np.hypot(*d))
            perp = np.array([-d[1], d[0]]) / length
            bend = rng.uniform(0.12, 0.25) * length * rng.choice([-1, 1]) if rng.random() < c.curved_fraction else 0.0
            dense = quadratic_bezier(pa, mid + perp * bend, pb, 400)
            ra, rb = self.junctions[a].radius, self.junctions[b].radius
            keep = (np.hypot(*(dense - pa).T) >= ra) & (np.hypot(*(dense - pb).T) >= rb)
            center = resample(dense[keep], 1.0)
            road = Road(id=len(self.roads), a=a, b=b, lanes=lanes[a, b], center=center, half_width=lanes[a, b] * c.lane_width)
            self.roads.append(road)
            self.junctions[a].roads.append(road.id)
            self.junctions[b].roads.append(road.id)
        for jn in self.junctions:
            jn.roads.sort(key=lambda r: self._arm_angle(jn, r))
            jn.lit = len(jn.roads) >= 3
            jn.phase_offset = float(rng.uniform(0.0, 100.0))

    def _arm_angle(self, jn: Junction, road_id: int) -> float:
        road = self.roads[road_id]
        end = road.center[0] if road.a == jn.id else road.center[-1]
        return math.atan2(end[1] - jn.center[1], end[0] - jn.center[0])

    def _build_lanes(self) -> None:
        lw = self.config.lane_width
        for road in self.roads:
            for forward in (True, False):
                center = road.center if forward else road.center[::-1]
                normals = right_normals(center)
                ids = []
                for index in range(road.lanes):
                    line = Polyline(center + normals * (index + 0.5) * lw)
                    lane = Lane(id=len(self.lanes), line=line, road=road.id, forward=forward, index=index,
                                end_junction=road.b if forward else road.a)
                    self.lanes.append(lane)
                    ids.append(lane.id)
                for left, right in zip(ids[:-1], ids[1:]):
                    self.lanes[left].right = right
                    self.lanes[right].left = left

    def _road_lanes(self, road_id: int, into_junction: int) -> list[Lane]:
        """Lanes of a road that drive into (or, with ``into_junction`` < 0 semantics, out of) a junction."""
        return sorted((l for l in self.lanes if l.road == road_id and l.end_junction == into_junction), key=lambda l: l.index)

    def _build_connectors(self) -> None:
        for jn in self.junctions:
            for r_in in jn.roads:
                incoming = self._road_lanes(r_in, jn.id)
                exits = []
                for r_out in (r for r in jn.roads if r != r_in):
                    outgoing = sorted((l for l in self.lanes if l.road == r_out and l.end_junction != jn.id), key=lambda l: l.index)
                    delta = float(wrap_angle(outgoing[0].line.headings[0] - incoming[0].line.headings[-1]))
                    if len(jn.roads) == 2:
                        option = RoadOption.LANEFOLLOW
                    elif abs(delta) < math.radians(35):
                        option = RoadOption.STRAIGHT
                    else:
                        option = RoadOption.RIGHT if delta > 0 else RoadOption.LEFT
                    exits.append((abs(delta), outgoing, option))
                    for src, dst in self._lane_pairs(incoming, outgoing, option):
                        self._connect(jn, src, dst, option)
                _, outgoing, option = min(exits, key=lambda e: e[0])
                for lane in (l for l in incoming if not l.successors):  # e.g. two left exits: go the straightest way
                    self._connect(jn, lane, outgoing[min(lane.index, len(outgoing) - 1)], option)

    @staticmethod
    def _lane_pairs(incoming: list[Lane], outgoing: list[Lane], option: RoadOption) -> list[tuple[Lane, Lane]]:
        if option == RoadOption.LEFT:
            return [(incoming[0], outgoing[0])]
        if option == RoadOption.RIGHT:
            return [(incoming[-1], outgoing[-1])]
        return [(lane, outgoing[min(lane.index, len(outgoing) - 1)]) for lane in incoming]

    def _connect(self, jn: Junction, src: Lane, dst: Lane, option: RoadOption) -> None:
        p0, p1 = src.line.points[-1], dst.line.points[0]
        h0, h1 = src.line.headings[-1], dst.line.headings[0]
        d = 0.45 * float(np.hypot(*(p1 - p0)))
        c0 = p0 + d * np.array([math.cos(h0), math.sin(h0)])
        c1 = p1 - d * np.array([math.cos(h1), math.sin(h1)])
        n = max(4, int(2 * np.hypot(*(p1 - p0))))
        line = Polyline(resample(cubic_bezier(p0, c0, c1, p1, n), 1.0))
        lane = Lane(id=len(self.lanes), line=line, junction=jn.id, option=option, successors=[dst.id], source=src.id)
        self.lanes.append(lane)
        src.successors.append(lane.id)

    def _build_sidewalks(self) -> None:
        c = self.config
        for road in self.roads:
            normals = right_normals(road.center)
            offset = road.half_width + c.sidewalk_width / 2
            for side in (1, -1):
                line = Polyline(road.center + side * normals * offset)
                self.sidewalks.append(Sidewalk(id=len(self.sidewalks), road=road.id, side=side, line=line))

    def _build_lights(self) -> None:
        """Two heads per arm of a lit junction: one beside the stop line and one across the junction.

        The near head leaves the camera's view as the car stops at the line; the far head stays in view
        (as in CARLA's towns). Both heads of an arm share its phase; ``lane_light`` returns the near one.
        """
        c = self.config
        for jn in (j for j in self.junctions if j.lit):
            for arm, road_id in enumerate(jn.roads):
                lane = self._road_lanes(road_id, jn.id)[-1]
                x, y, h = lane.line.at(lane.stop_s)
                right = np.array([-math.sin(h), math.cos(h)])
                offset = 0.5 * c.lane_width + c.sidewalk_width - 0.6
                near = np.array([x, y]) + right * offset
                self.lights.append(LightHead(actor_id=1000 + len(self.lights), junction=jn.id, road=road_id, arm=arm,
                                             x=float(near[0]), y=float(near[1]), yaw=h + math.pi))
                far = self._far_side_spot(jn, np.array([x, y]), h, offset)
                if far is not None:
                    self.lights.append(LightHead(actor_id=1000 + len(self.lights), junction=jn.id, road=road_id, arm=arm,
                                                 x=float(far[0]), y=float(far[1]), yaw=h + math.pi, far=True))

    def _far_side_spot(self, jn: Junction, stop: np.ndarray, heading: float, offset: float) -> np.ndarray | None:
        """A pole position straight across the junction, right of the path and clear of every lane (None if none)."""
        forward = np.array([math.cos(heading), math.sin(heading)])
        right = np.array([-math.sin(heading), math.cos(heading)])
        rel = stop - jn.center
        b = float(rel @ forward)
        disc = b * b - float(rel @ rel) + jn.radius**2
        if disc <= 0:
            return None
        across = -b + math.sqrt(disc) + 1.0  # past the far edge of the junction disc
        lanes = np.concatenate([l.line.points for l in self.lanes
                                if l.junction == jn.id or (l.road is not None and jn.id in (self.roads[l.road].a, self.roads[l.road].b))])
        clearance = 0.5 * self.config.lane_width + 1.0
        for extra in np.arange(0.0, 6.01, 0.5):
            spot = stop + forward * across + right * (offset + extra)
            if np.hypot(*(lanes - spot).T).min() >= clearance:
                return spot
        return None

    # -- queries ----------------------------------------------------------------------------------
    def light_state(self, junction: int, arm: int, t: float) -> TrafficLightState:
        """Signal of one arm of a lit junction at time ``t`` (split phasing, then a pedestrian phase)."""
        jn = self.junctions[junction]
        if not jn.lit:
            return TrafficLightState.GREEN
        tr = self.traffic
        slot = tr.green_s + tr.yellow_s + tr.all_red_s
        tc = (t + jn.phase_offset) % self.light_cycle(junction)
        start = arm * slot
        if start <= tc < start + tr.green_s:
            return TrafficLightState.GREEN
        if start + tr.green_s <= tc < start + tr.green_s + tr.yellow_s:
            return TrafficLightState.YELLOW
        return TrafficLightState.RED

    def pedestrian_walk_time(self, junction: int, t: float) -> float:
        """Seconds left in the junction's pedestrian phase at ``t`` (0 when pedestrians must wait)."""
        jn = self.junctions[junction]
        if not jn.lit:
            return 0.0
        tr = self.traffic
        vehicle_part = (tr.green_s + tr.yellow_s + tr.all_red_s) * len(jn.roads)
        cycle = self.light_cycle(junction)
        tc = (t + jn.phase_offset) % cycle
        return max(cycle - tc, 0.0) if tc >= vehicle_part else 0.0

    def light_cycle(self, junction: int) -> float:
        """Seconds of one signal cycle of a junction: each arm's green, yellow and all-red in turn, then the
        pedestrian phase."""
        tr = self.traffic
        return (tr.green_s + tr.yellow_s + tr.all_red_s) * len(self.junctions[junction].roads) + tr.pedestrian_phase_s

    def lane_light(self, lane: Lane) -> LightHead | None:
        """The light at the end of a road lane, if its junction is lit."""
        if lane.road is None or not self.junctions[lane.end_junction].lit:
            return None
        jn = self.junctions[lane.end_junction]
        return self._near_heads[jn.id, jn.roads.index(lane.road)]

    def nearest_lane(self, x: float, y: float, heading: float | None = None) -> Lane:
        """The road lane closest to (x, y), preferring lanes whose direction matches ``heading``."""
        d = np.hypot(self._lane_points[:, 0] - x, self._lane_points[:, 1] - y)
        if heading is None:
            return self.lanes[int(self._lane_owner[int(np.argmin(d))])]
        near = np.argpartition(d, 64)[:64]
        order = near[np.argsort(d[near])]
        for k in order:
            lane = self.lanes[int(self._lane_owner[k])]
            if heading is None:
                return lane
            s, _ = lane.line.project(np.array([x, y]))
            if abs(wrap_angle(lane.line.at(s)[2] - heading)) < math.pi / 2:
                return lane
        raise ValueError(f"no lane near ({x:.1f}, {y:.1f}) with heading {heading}")


@lru_cache(maxsize=8)
def _cached_town(config_key: tuple, traffic_key: tuple) -> Town:
    return Town(TownConfig(*config_key), TrafficConfig(*traffic_key))


def get_town(config: TownConfig, traffic: TrafficConfig) -> Town:
    """Build (or reuse) the town for a config; towns are immutable once built."""
    return _cached_town(tuple(vars(config).values()), tuple(vars(traffic).values()))
