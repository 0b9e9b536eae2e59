"""Global route planning on a CARLA map, like CARLA's ``GlobalRoutePlanner`` but on plain data.

``Map.get_topology()`` becomes a list of :class:`Segment` (one lane of one road section, sampled every
``resolution`` metres) by :func:`topology_segments`; everything else works on segments alone, so it
runs and is tested without a server. The planner builds a networkx DiGraph (segment entry/exit points
are nodes, segments and legal lane changes are edges), finds routes with A*, assigns a RoadOption per
route point (LANEFOLLOW on roads; LEFT/RIGHT/STRAIGHT through junctions from the turn angle;
CHANGELANELEFT/RIGHT on lane changes) and returns a :class:`Route` resampled 1 m apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import carla
import networkx as nx
import numpy as np
from drivestack.sim.conventions import RoadOption
from drivestack.sim.route_plan import announce_junctions

LaneKey = tuple[int, int, int]  # (road_id, section_id, lane_id)

NODE_MERGE_M = 0.5  # segment ends closer than this are one graph node
LANE_CHANGE_COST_M = 5.0  # extra cost of a lane change edge, so that needless changes are avoided
LANE_CHANGE_AHEAD = 5  # a lane change joins the target lane this many points ahead (as GlobalRoutePlanner)
STRAIGHT_THRESHOLD = math.radians(33.0)  # turns below this angle are STRAIGHT (GlobalRoutePlanner)
ROUTE_STEP_M = 1.0
MAX_SEGMENT_POINTS = 10000  # guards the sampling of a lane that loops onto itself


@dataclass
class Segment:
    """One lane of one road section, sampled from its entry to its exit."""

    key: LaneKey
    points: np.ndarray  # (M >= 2, 3): x, y, yaw in degrees
    is_junction: bool = False
    z: tuple[float, float] = (0.0, 0.0)  # entry and exit height (keeps stacked roads apart)
    left: LaneKey | None = None  # same-direction lane on the left that a lane change may enter
    right: LaneKey | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 3 or len(self.points) < 2:
            raise ValueError(f"segment {self.key}: points must be (M >= 2, 3) x, y, yaw, got {self.points.shape}")

    @property
    def length(self) -> float:
        return float(np.hypot(*np.diff(self.points[:, :2], axis=0).T).sum())


@dataclass
class Route:
    """A route as world points ``step`` metres apart, with a RoadOption per point."""

    points: np.ndarray  # (N, 2) world x, y
    options: np.ndarray  # (N,) RoadOption values
    s: np.ndarray  # (N,) metres from the start

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def position(self, s: float) -> np.ndarray:
        """World (x, y) at ``s`` metres along the route (clamped to the ends)."""
        return np.array([np.interp(s, self.s, self.points[:, 0]), np.interp(s, self.s, self.points[:, 1])])

    def option_at(self, s: float) -> RoadOption:
        """The RoadOption of the first route point at or ahead of ``s``."""
        i = min(int(np.searchsorted(self.s, s - 1e-6)), len(self.s) - 1)
        return RoadOption(int(self.options[i]))

    def locate(self, x: float, y: float, lo: int = 0, hi: int | None = None) -> tuple[float, float]:
        """Arc length of the point nearest to (x, y) on route points ``lo..hi`` and its distance."""
        hi = len(self.points) - 1 if hi is None else min(hi, len(self.points) - 1)
        lo = min(max(lo, 0), max(hi - 1, 0))
        a, b = self.points[lo:hi], self.points[lo + 1 : hi + 1]
        if not len(a):
            return float(self.s[lo]), float(np.hypot(x - self.points[lo, 0], y - self.points[lo, 1]))
        ab = b - a
        p = np.array([x, y])
        t = np.clip(((p - a) * ab).sum(axis=1) / np.maximum((ab**2).sum(axis=1), 1e-12), 0.0, 1.0)
        d = np.hypot(*(a + t[:, None] * ab - p).T)
        k = int(np.argmin(d))
        return float(self.s[lo + k] + t[k] * (self.s[lo + k + 1] - self.s[lo + k])), float(d[k])

    def ahead(self, s: float, x: float, y: float, yaw_deg: float, n: int, step: float = ROUTE_STEP_M) -> np.ndarray:
        """(n, 2) route points from ``s`` on, ``step`` apart, in the ego frame (x forward, y right).

        Past the end the last point repeats.
        """
        ss = np.minimum(s + step * np.arange(n), self.length)
        dx = np.interp(ss, self.s, self.points[:, 0]) - x
        dy = np.interp(ss, self.s, self.points[:, 1]) - y
        c, si = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        return np.stack([c * dx + si * dy, -si * dx + c * dy], axis=1)


def resample(points: np.ndarray, options: np.ndarray, step: float = ROUTE_STEP_M) -> Route:
    """Route through ``points`` (K, 2) resampled every ``step`` metres (the end point kept).

    A sample between two input points takes the option of the point it runs towards.
    """
    points = np.asarray(points, dtype=np.float64)
    keep = np.concatenate([[True], np.hypot(*np.diff(points, axis=0).T) > 1e-6])
    points, options = points[keep], np.asarray(options)[keep]
    s_in = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    s = np.arange(0.0, s_in[-1], step) if s_in[-1] > 0 else np.zeros(1)
    if s_in[-1] - s[-1] > 1e-6:
        s = np.append(s, s_in[-1])
    xy = np.stack([np.interp(s, s_in, points[:, 0]), np.interp(s, s_in, points[:, 1])], axis=1)
    idx = np.minimum(np.searchsorted(s_in, s - 1e-9), len(s_in) - 1)
    return Route(xy, options[idx].astype(np.int64), s)


def _announced(route: Route) -> Route:
    """Give each turn's command to the points before its junction, as the embedded simulator does."""
    announce_junctions(route.options, ROUTE_STEP_M)
    return route


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _heading(yaw_deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))])


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    """z of the cross product; > 0 turns right in CARLA's frame (x forward, y right)."""
    return float(a[0] * b[1] - a[1] * b[0])


class RoutePlanner:
    """A* routes over a map's lane segments, with CARLA's RoadOption per point."""

    def __init__(self, segments: list[Segment]):
        if not segments:
            raise ValueError("a route planner needs at least one segment")
        self.segments = segments
        self.graph = nx.DiGraph()
        self._node_xyz: list[np.ndarray] = []
        self._node_cells: dict[tuple[int, int, int], list[int]] = {}
        self._ends: list[tuple[int, int]] = []
        by_key = {seg.key: i for i, seg in enumerate(segments)}
        for i, seg in enumerate(segments):
            entry = self._node(seg.points[0, 0], seg.points[0, 1], seg.z[0])
            exit_ = self._node(seg.points[-1, 0], seg.points[-1, 1], seg.z[1])
            self._ends.append((entry, exit_))
            old = self.graph.get_edge_data(entry, exit_)
            if old is not None and old["length"] <= seg.length:
                continue  # two lanes between the same ends: keep the shorter
            self.graph.add_edge(
                entry,
                exit_,
                segment=i,
                length=seg.length,
                type=RoadOption.LANEFOLLOW,
                intersection=seg.is_junction,
                exit_vector=_heading(seg.points[-1, 2]),
                net_vector=_unit(seg.points[-1, :2] - seg.points[0, :2]),
            )
        for i, seg in enumerate(segments):
            if seg.is_junction:
                continue
            for target, option in ((seg.left, RoadOption.CHANGELANELEFT), (seg.right, RoadOption.CHANGELANERIGHT)):
                if target is None or target not in by_key:
                    continue
                j = by_key[target]
                u, v = self._ends[i][0], self._ends[j][0]
                if u != v and not self.graph.has_edge(u, v):
                    self.graph.add_edge(u, v, segment=j, length=LANE_CHANGE_COST_M, type=option, intersection=False)
        self._all_points = np.concatenate([seg.points[:, :2] for seg in segments])
        self._owner = np.concatenate([np.full(len(seg.points), i) for i, seg in enumerate(segments)])
        self._offset = np.concatenate([np.arange(len(seg.points)) for seg in segments])

    def _node(self, x: float, y: float, z: float) -> int:
        """The node at (x, y, z), merging ends within NODE_MERGE_M."""
        p = np.array([x, y, z])
        cell = tuple(int(c) for c in np.floor(p / NODE_MERGE_M))
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for node in self._node_cells.get((cell[0] + dx, cell[1] + dy, cell[2] + dz), []):
                        if np.linalg.norm(self._node_xyz[node] - p) < NODE_MERGE_M:
                            return node
        node = len(self._node_xyz)
        self._node_xyz.append(p)
        self._node_cells.setdefault(cell, []).append(node)
        self.graph.add_node(node)
        return node

    def localize(self, x: float, y: float) -> tuple[int, int]:
        """(segment index, point index) of the sampled lane point nearest to (x, y)."""
        k = int(np.argmin(np.hypot(self._all_points[:, 0] - x, self._all_points[:, 1] - y)))
        return int(self._owner[k]), int(self._offset[k])

    def plan(self, trip: list[tuple[float, float]]) -> Route:
        """Shortest route (A*) from the first trip point through the others to the last."""
        if len(trip) < 2:
            raise ValueError(f"a route needs at least 2 trip points, got {len(trip)}")
        points: list[np.ndarray] = []
        options: list[np.ndarray] = []
        for a, b in pairwise(trip):
            p, o = self._leg(a, b)
            if points:
                p, o = p[1:], o[1:]
            points.append(p)
            options.append(o)
        return _announced(resample(np.concatenate(points), np.concatenate(options)))

    def random_route(self, start: tuple[float, float], length: float, rng: np.random.Generator) -> Route:
        """A route of up to ``length`` metres from ``start``, taking a random exit at each node."""
        seg_i, j = self.localize(*start)
        path = list(self._ends[seg_i])
        seg = self.segments[seg_i]
        total = seg.length * (1.0 - j / max(len(seg.points) - 1, 1))
        visited = {seg_i}
        while total < length:
            follow = [
                v
                for v in self.graph.successors(path[-1])
                if self.graph.edges[path[-1], v]["type"] == RoadOption.LANEFOLLOW
            ]
            if not follow:
                break
            fresh = [v for v in follow if self.graph.edges[path[-1], v]["segment"] not in visited]
            nxt = (fresh or follow)[int(rng.integers(len(fresh or follow)))]
            edge = self.graph.edges[path[-1], nxt]
            visited.add(edge["segment"])
            total += edge["length"]
            path.append(nxt)
        points, options = self._trace(path, start, None)
        route = _announced(resample(points, options))
        keep = route.s <= length + 1e-6
        return Route(route.points[keep], route.options[keep], route.s[keep])

    def _leg(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        seg_a, ja = self.localize(*a)
        seg_b, jb = self.localize(*b)
        entry_a, exit_a = self._ends[seg_a]
        entry_b, exit_b = self._ends[seg_b]
        try:
            if seg_a == seg_b and jb >= ja:
                path = [entry_a, exit_a]
            elif seg_a == seg_b:  # the goal is behind on the same lane: go round
                path = [entry_a] + self._astar(exit_a, entry_b) + [exit_b]
            else:
                path = self._astar(entry_a, entry_b) + [exit_b]
        except nx.NetworkXNoPath as e:
            raise ValueError(f"no route from {a} to {b} on this map") from e
        return self._trace(path, a, b)

    def _astar(self, source: int, target: int) -> list[int]:
        xyz = self._node_xyz
        return nx.astar_path(
            self.graph, source, target, heuristic=lambda u, v: float(np.linalg.norm(xyz[u] - xyz[v])), weight="length"
        )

    def _trace(
        self, path: list[int], start: tuple[float, float], goal: tuple[float, float] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Route points (K, 2) and options along a node path, from ``start`` to ``goal`` (or the end)."""
        decisions = self._turn_decisions(path)
        points: list[np.ndarray] = []
        options: list[int] = []
        resume: tuple[int, int] | None = None  # (segment, point index) where a lane change joins
        for k, (u, v) in enumerate(pairwise(path)):
            edge = self.graph.edges[u, v]
            option = int(decisions[k])
            if edge["type"] != RoadOption.LANEFOLLOW:
                if not points:
                    seg_i, j = self.localize(*start)
                    points.append(self.segments[seg_i].points[j, :2])
                    options.append(option)
                target = self.segments[edge["segment"]].points[:, :2]
                near = int(np.argmin(np.hypot(*(target - points[-1]).T)))
                resume = (edge["segment"], min(near + LANE_CHANGE_AHEAD, len(target) - 1))
                options[-1] = option
                points.append(target[resume[1]])
                options.append(option)
                continue
            pts = self.segments[edge["segment"]].points[:, :2]
            first = 0
            if resume is not None and resume[0] == edge["segment"]:
                first = resume[1] + 1
            elif not points:
                first = int(np.argmin(np.hypot(*(pts - np.asarray(start)).T)))
            last = len(pts)
            if goal is not None and k == len(path) - 2:
                last = max(int(np.argmin(np.hypot(*(pts - np.asarray(goal)).T))) + 1, min(first + 1, len(pts)))
            resume = None
            for p in pts[first:last]:
                if points and np.hypot(*(p - points[-1])) < 1e-3:
                    continue
                points.append(p)
                options.append(option)
        if len(points) == 1:
            points.append(points[0])
            options.append(options[0])
        return np.array(points), np.array(options, dtype=np.int64)

    def _turn_decisions(self, path: list[int]) -> list[RoadOption]:
        """RoadOption per edge of a node path, as GlobalRoutePlanner._turn_decision decides it."""
        g = self.graph
        decisions: list[RoadOption] = []
        previous = RoadOption.VOID
        junction_end: int | None = None
        for i in range(len(path) - 1):
            nxt = g.edges[path[i], path[i + 1]]
            if i == 0:
                decision = nxt["type"]
            elif (
                previous != RoadOption.VOID
                and junction_end is not None
                and junction_end != path[i - 1]
                and nxt["type"] == RoadOption.LANEFOLLOW
                and nxt["intersection"]
            ):
                decision = previous  # still inside the junction being turned through
            else:
                junction_end = None
                cur = g.edges[path[i - 1], path[i]]
                entering = (
                    cur["type"] == RoadOption.LANEFOLLOW
                    and not cur["intersection"]
                    and nxt["type"] == RoadOption.LANEFOLLOW
                    and nxt["intersection"]
                )
                if entering:
                    junction_end, tail = self._last_junction_edge(i, path)
                    decision = self._turn(cur["exit_vector"], tail["net_vector"], path[i], path[i + 1])
                else:
                    decision = nxt["type"]
            previous = decision
            decisions.append(decision)
        return decisions

    def _last_junction_edge(self, i: int, path: list[int]) -> tuple[int | None, dict]:
        """The last of the consecutive junction edges from ``path[i]`` and its end node."""
        last_edge, last_node = self.graph.edges[path[i], path[i + 1]], None
        for u, v in pairwise(path[i:]):
            edge = self.graph.edges[u, v]
            if edge["type"] == RoadOption.LANEFOLLOW and edge["intersection"]:
                last_edge, last_node = edge, v
            else:
                break
        return last_node, last_edge

    def _turn(self, entry: np.ndarray, exit_: np.ndarray, node: int, taken: int) -> RoadOption:
        """LEFT/RIGHT/STRAIGHT for leaving ``node`` towards ``taken`` relative to the other exits."""
        others = [
            _cross(entry, self.graph.edges[node, v]["net_vector"])
            for v in self.graph.successors(node)
            if v != taken and self.graph.edges[node, v]["type"] == RoadOption.LANEFOLLOW
        ] or [0.0]
        cross = _cross(entry, exit_)
        angle = math.acos(float(np.clip(np.dot(_unit(entry), _unit(exit_)), -1.0, 1.0)))
        if angle < STRAIGHT_THRESHOLD:
            return RoadOption.STRAIGHT
        if cross < min(others):
            return RoadOption.LEFT
        if cross > max(others):
            return RoadOption.RIGHT
        return RoadOption.LEFT if cross <= 0 else RoadOption.RIGHT


def topology_segments(carla_map, resolution: float = 2.0) -> list[Segment]:
    """Sample every ``carla_map.get_topology()`` pair into a Segment (needs a live map)."""
    segments = []
    for entry, exit_ in carla_map.get_topology():
        key = (entry.road_id, entry.section_id, entry.lane_id)
        waypoints = [entry]
        end = exit_.transform.location
        w = entry
        while len(waypoints) < MAX_SEGMENT_POINTS:
            nxt = w.next(resolution)
            if not nxt or (nxt[0].road_id, nxt[0].section_id, nxt[0].lane_id) != key:
                break
            w = nxt[0]
            if w.transform.location.distance(end) < 0.5 * resolution:
                break
            waypoints.append(w)
        waypoints.append(exit_)
        sides: dict[str, LaneKey | None] = {"left": None, "right": None}
        if not entry.is_junction:
            for w in waypoints:
                for side, flag, get in (
                    ("left", carla.LaneChange.Left, w.get_left_lane),
                    ("right", carla.LaneChange.Right, w.get_right_lane),
                ):
                    if sides[side] is None and w.lane_change & flag:
                        lane = get()
                        if (
                            lane is not None
                            and lane.lane_type == carla.LaneType.Driving
                            and lane.road_id == w.road_id
                            and lane.lane_id * w.lane_id > 0
                        ):
                            sides[side] = (lane.road_id, lane.section_id, lane.lane_id)
        points = [(w.transform.location.x, w.transform.location.y, w.transform.rotation.yaw) for w in waypoints]
        z = (entry.transform.location.z, exit_.transform.location.z)
        segments.append(Segment(key, np.array(points), entry.is_junction, z, sides["left"], sides["right"]))
    return segments
