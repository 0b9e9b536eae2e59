"""Routes on a town's lane graph: random routes from a seed, A* routes through trip points, and the dense
route polyline (1 m apart) with a CARLA RoadOption per point and the stop lines it crosses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from drivestack.sim.conventions import RoadOption
from drivestack.sim.embedded.town import Lane, Town
from drivestack.sim.route_plan import announce_junctions

LANE_CHANGE_M = 15.0


@dataclass
class Route:
    points: np.ndarray  # (N, 2) world x, y, 1 m apart
    commands: np.ndarray  # (N,) RoadOption values
    stops: list[tuple[int, int]]  # (point index of a stop line, index into town.lights)

    @property
    def length(self) -> float:
        return float(len(self.points) - 1)


def random_route(town: Town, rng: np.random.Generator, length: float) -> Route:
    """A route of about ``length`` metres from a random road lane, turning at random at junctions."""
    lane = town.lanes[int(rng.choice(town.road_lanes))]
    path = [lane.id]
    total = lane.line.length
    while total < length + 10.0:
        connectors = [c for l in _parallel_lanes(town, lane) for c in town.lanes[l].successors]
        connector = town.lanes[int(rng.choice(connectors))]
        path += _lane_changes(town, lane, town.lanes[connector.source])
        nxt = town.lanes[connector.successors[0]]
        path += [connector.id, nxt.id]
        total += connector.line.length + nxt.line.length
        lane = nxt
    s0 = float(rng.uniform(0.0, 0.4)) * town.lanes[path[0]].line.length
    return assemble(town, path, s0, length)


def route_through(town: Town, waypoints: list[tuple[float, float]]) -> Route:
    """Shortest route (A* on the lane graph) from the first trip point through the others."""
    if len(waypoints) < 2:
        raise ValueError(f"a route needs at least 2 trip points, got {len(waypoints)}")
    graph = _lane_graph(town)
    lanes = [town.nearest_lane(x, y) for x, y in waypoints]
    path = [lanes[0].id]
    for a, b in zip(lanes[:-1], lanes[1:]):
        try:
            leg = nx.astar_path(graph, a.id, b.id, heuristic=lambda u, v: _distance(town, u, v), weight="weight")
        except nx.NetworkXNoPath as e:
            raise ValueError(f"no route from trip point {a.line.points[0]} to {b.line.points[0]}") from e
        path += leg[1:]
    s0, _ = lanes[0].line.project(np.array(waypoints[0]))
    s_end, _ = lanes[-1].line.project(np.array(waypoints[-1]))
    route = assemble(town, path, s0, math.inf)
    cut = len(route.points) - int(lanes[-1].line.length - s_end)
    return Route(route.points[:cut], route.commands[:cut], [s for s in route.stops if s[0] < cut])


def _distance(town: Town, u: int, v: int) -> float:
    return float(np.hypot(*(town.lanes[u].line.points[-1] - town.lanes[v].line.points[-1])))


def _lane_graph(town: Town) -> nx.DiGraph:
    graph = nx.DiGraph()
    for lane in town.lanes:
        for s in lane.successors:
            graph.add_edge(lane.id, s, weight=lane.line.length)
        for side in (lane.left, lane.right):
            if side is not None:
                graph.add_edge(lane.id, side, weight=LANE_CHANGE_M + 10.0)
    return graph


def _parallel_lanes(town: Town, lane: Lane) -> list[int]:
    return [l.id for l in town.lanes if l.road == lane.road and l.forward == lane.forward]


def _lane_changes(town: Town, lane: Lane, target: Lane) -> list[int]:
    """Lane ids to step through from ``lane`` to ``target`` (same road and direction)."""
    out = []
    while lane.id != target.id:
        lane = town.lanes[lane.left if target.index < lane.index else lane.right]
        out.append(lane.id)
    return out


def assemble(town: Town, path: list[int], s0: float, length: float) -> Route:
    """Dense route polyline for a lane path (lane changes are consecutive lanes of the same road)."""
    chunks: list[np.ndarray] = []
    commands: list[np.ndarray] = []
    stops: list[tuple[int, int]] = []
    i, s = 0, s0
    count = 0
    while i < len(path):
        lane = town.lanes[path[i]]
        changes = 0
        while i + changes + 1 < len(path) and town.lanes[path[i + changes + 1]].road == lane.road and lane.road is not None:
            changes += 1
        end_lane = town.lanes[path[i + changes]]
        if changes == 0:
            pts = lane.line.sample(s, lane.line.length, 1.0)
            cmd = np.full(len(pts), lane.option)
        else:
            pts, cmd = _lane_change_points(town, [town.lanes[p] for p in path[i : i + changes + 1]], s)
        if chunks and len(pts) and np.hypot(*(pts[0] - chunks[-1][-1])) < 0.5:
            pts, cmd = pts[1:], cmd[1:]  # the point the last chunk ended on (a chunk may be left empty: a lane ending within 1 m of s)
        light = town.lane_light(end_lane) if end_lane.road is not None else None
        if light is not None and s <= end_lane.stop_s:
            stops.append((count + int(end_lane.stop_s - s), town.lights.index(light)))
        if len(pts):
            chunks.append(pts)
            commands.append(cmd)
        count += len(pts)
        i += changes + 1
        s = 0.0
        if count >= length:
            break
    points = np.concatenate(chunks)
    cmds = np.concatenate(commands).astype(np.int64)
    n = int(min(length, len(points) - 1)) + 1
    points, cmds = points[:n], cmds[:n]
    announce_junctions(cmds)
    return Route(points, cmds, [st for st in stops if st[0] < n])


def _lane_change_points(town: Town, lanes: list[Lane], s: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along parallel lanes that blend from the first lane into the last before the stop line."""
    first, last = lanes[0], lanes[-1]
    end = first.stop_s - 3.0
    width = min(LANE_CHANGE_M * (len(lanes) - 1), max(end - s, 4.0))
    start = max(s, end - width)
    ss = np.arange(s, first.line.length, 1.0)
    a = first.line.sample(s, first.line.length, 1.0)
    ratio = last.line.length / first.line.length  # parallel lanes differ in length on curves
    b = np.stack([np.interp(ss * ratio, last.line.cum, last.line.points[:, k]) for k in (0, 1)], axis=1)
    t = np.clip((ss - start) / max(end - start, 1e-6), 0.0, 1.0)
    w = (t * t * (3 - 2 * t))[:, None]
    pts = (1 - w) * a + w * b
    option = RoadOption.CHANGELANELEFT if last.index < first.index else RoadOption.CHANGELANERIGHT
    cmd = np.where((t > 0) & (t < 1), option, RoadOption.LANEFOLLOW)
    return pts, cmd
