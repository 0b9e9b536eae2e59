"""Other road users of the embedded simulator: NPC vehicles that follow lanes with IDM gap keeping, obey
lights and yield at junctions, and pedestrians that walk sidewalks, cross at crosswalks in the
pedestrian phase and sometimes jaywalk.

Dense traffic must not gridlock (a stopped queue makes a broken test for any driver), so two rules keep
junctions flowing: a vehicle enters a junction only when its exit lane has room for it ("don't block the
box"), and inside a junction it yields only to vehicles that entered before it (entry order is a total
order, so no two vehicles wait for each other)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from drivestack.sim.conventions import RoadOption, TrafficLightState
from drivestack.sim.embedded.town import Town
from drivestack.sim.geometry import Polyline, box_corners, obb_overlap

LOOKAHEAD_M = 40.0
PATH_STEP_M = 2.0
IDM_MIN_GAP = 2.5
IDM_HEADWAY = 1.2
IDM_ACCEL = 2.0
IDM_DECEL = 3.0
TURN_SPEED = 5.0  # m/s on junction turns
WALKER_LOOK_M = (0.5, 1.0)  # metres ahead: a walker stands while its body there would touch a vehicle (people do not walk into cars)
WALKER_PATIENCE_S = 5.0  # seconds a walker stands for a vehicle before it walks on (no walker and car wait for each other for good)
EXIT_ROOM_M = 3.0  # free metres an exit lane needs beyond a vehicle's length before the vehicle enters the junction


@dataclass
class Npc:
    id: int
    path: list[int]  # lane ids, path[0] is the current lane
    s: float
    speed: float
    extent: tuple[float, float, float]
    color: tuple[int, int, int]
    tag: int
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    entered: float = math.inf  # when it entered the junction it is in (inf: on a road lane)


@dataclass
class Walker:
    id: int
    leg: Polyline  # what the walker is walking along now
    s: float
    speed: float
    node: tuple[int, int]  # (sidewalk id, end 0/1) the leg ends at
    color: tuple[int, int, int]
    waiting: bool = False  # at a crosswalk, for the pedestrian phase
    crossing: bool = False  # the leg crosses the road (crosswalk or jaywalking)
    at_junction_next: bool = True  # at the leg's end: choose at the junction, else walk the sidewalk on
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    extent: tuple[float, float, float] = (0.25, 0.3, 0.9)
    standing_s: float = 0.0  # seconds it has stood for a vehicle just ahead


class Traffic:
    """All NPC vehicles and walkers of one episode; deterministic from its random generator."""

    def __init__(self, town: Town, rng: np.random.Generator, vehicles: int, walkers: int,
                 avoid: tuple[float, float], jaywalk_rate: float, speed: float):
        self.town, self.rng = town, rng
        self.jaywalk_rate, self.desired_speed = jaywalk_rate, speed
        self.npcs: list[Npc] = []
        self.walkers: list[Walker] = []
        self._spawn_vehicles(vehicles, avoid)
        self._spawn_walkers(walkers)

    # -- spawning ---------------------------------------------------------------------------------
    def _spawn_vehicles(self, count: int, avoid: tuple[float, float]) -> None:
        taken: list[tuple[float, float]] = [avoid]
        for attempt in range(count * 20):
            if len(self.npcs) >= count:
                break
            lane = self.town.lanes[int(self.rng.choice(self.town.road_lanes))]
            s = float(self.rng.uniform(0.0, max(lane.stop_s - 8.0, 0.0)))
            x, y, yaw = lane.line.at(s)
            if any(math.hypot(x - a, y - b) < 12.0 for a, b in taken):
                continue
            taken.append((x, y))
            truck = self.rng.random() < 0.15
            extent = (3.6, 1.3, 1.6) if truck else tuple(float(v) for v in self.rng.uniform((2.0, 0.9, 0.7), (2.5, 1.1, 0.85)))
            color = tuple(int(v) for v in self.rng.integers(20, 235, 3))
            npc = Npc(id=100 + len(self.npcs), path=[lane.id], s=s, speed=float(self.rng.uniform(0, 5)),
                      extent=extent, color=color, tag=15 if truck else 14, x=x, y=y, yaw=yaw)
            self._extend_path(npc)
            self.npcs.append(npc)

    def _spawn_walkers(self, count: int) -> None:
        for k in range(count):
            walk = self.town.sidewalks[int(self.rng.integers(len(self.town.sidewalks)))]
            forward = bool(self.rng.random() < 0.5)
            leg = walk.line if forward else Polyline(walk.line.points[::-1])
            color = tuple(int(v) for v in self.rng.integers(30, 230, 3))
            w = Walker(id=500 + k, leg=leg, s=float(self.rng.uniform(0, leg.length)), speed=float(self.rng.uniform(1.0, 1.6)),
                       node=(walk.id, 1 if forward else 0), color=color)
            w.x, w.y, w.yaw = leg.at(w.s)
            self.walkers.append(w)

    # -- vehicles ---------------------------------------------------------------------------------
    def _extend_path(self, npc: Npc) -> None:
        ahead = self.town.lanes[npc.path[0]].line.length - npc.s
        for lid in npc.path[1:]:
            ahead += self.town.lanes[lid].line.length
        while ahead < LOOKAHEAD_M + 10.0:
            succ = self.town.lanes[npc.path[-1]].successors
            nxt = int(succ[int(self.rng.integers(len(succ)))])
            npc.path.append(nxt)
            ahead += self.town.lanes[nxt].line.length

    def _path_ahead(self, npc: Npc) -> np.ndarray:
        """Points every PATH_STEP_M metres along the NPC's planned lanes (lanes are sampled 1 m apart)."""
        n = int(LOOKAHEAD_M / PATH_STEP_M)
        first = self.town.lanes[npc.path[0]].line
        pieces = [first.points[int(np.searchsorted(first.cum, npc.s)) :]]
        count = len(pieces[0])
        for lid in npc.path[1:]:
            if count >= n * PATH_STEP_M:
                break
            pieces.append(self.town.lanes[lid].line.points[1:])
            count += len(pieces[-1])
        path = np.concatenate(pieces)[:: int(PATH_STEP_M)][:n]
        if len(path) < n:
            path = np.vstack([path, np.repeat(path[-1:], n - len(path), axis=0)])
        return path

    def _stop_distance(self, npc: Npc, t: float, occupied: dict[int, set[int]]) -> float:
        """Distance to the next stop line the NPC must halt at (red light or a busy junction), or inf."""
        lane = self.town.lanes[npc.path[0]]
        if lane.road is None or len(npc.path) < 2:
            return math.inf
        gap = lane.stop_s - npc.s
        if gap < -1.0:
            return math.inf
        light = self.town.lane_light(lane)
        if light is not None:
            state = self.town.light_state(light.junction, light.arm, t)
            braking = npc.speed**2 / (2 * IDM_DECEL)
            if state == TrafficLightState.RED or (state == TrafficLightState.YELLOW and gap > braking):
                return gap
        if self.town.junctions[lane.end_junction].lit and occupied.get(lane.end_junction, set()) - {lane.road}:
            return gap
        if gap > 0.0 and not self._exit_has_room(npc):
            return gap
        return math.inf

    def _exit_has_room(self, npc: Npc) -> bool:
        """Whether the lane after the junction ahead has room for ``npc`` past the vehicles standing in the
        junction lane and at the exit lane's start (so entering cannot leave it stuck inside the junction)."""
        if len(npc.path) < 3:
            return True
        connector, exit_lane = npc.path[1], npc.path[2]
        room = 2 * npc.extent[0] + EXIT_ROOM_M
        for other in self.npcs:
            if other is npc or other.speed > 1.0:
                continue
            if other.path[0] == connector or (other.path[0] == exit_lane and other.s - other.extent[0] < room):
                return False
        return True

    def step_vehicles(self, dt: float, t: float, others: np.ndarray, others_speed: np.ndarray,
                      unseen: np.ndarray | None = None) -> None:
        """IDM step for every NPC. ``others``: (M, 3) x, y, radius of obstacles that are not NPCs; ``unseen``:
        (N, M) True where NPC i does not yield to obstacle m (a prediction of a vehicle it drives ahead of)."""
        if not self.npcs:
            return
        occupied: dict[int, set[int]] = {}
        junction = np.full(len(self.npcs), -1)  # the junction each vehicle is in, -1 on a road lane
        for i, npc in enumerate(self.npcs):
            lane = self.town.lanes[npc.path[0]]
            if lane.junction is not None:
                occupied.setdefault(lane.junction, set()).add(self.town.lanes[lane.source].road)
                npc.entered = min(npc.entered, t)
                junction[i] = lane.junction
            else:
                npc.entered = math.inf
        own = np.array([(n.x, n.y, n.extent[1] + 0.3) for n in self.npcs])
        obstacles = np.vstack([own, others]) if len(others) else own
        speeds = np.concatenate([[n.speed for n in self.npcs], others_speed]) if len(others) else np.array([n.speed for n in self.npcs])
        paths = np.stack([self._path_ahead(n) for n in self.npcs])  # (N, P, 2)
        d = np.hypot(paths[:, :, None, 0] - obstacles[None, None, :, 0], paths[:, :, None, 1] - obstacles[None, None, :, 1])
        near = d < (1.2 + obstacles[None, None, :, 2])
        n = len(self.npcs)
        near[np.arange(n), :, np.arange(n)] = False
        # inside a junction, a vehicle yields only to vehicles that entered before it (ties: the lower id first)
        rank = np.argsort(np.lexsort(([npc.id for npc in self.npcs], [npc.entered for npc in self.npcs])))
        later = (junction[:, None] >= 0) & (junction[:, None] == junction[None, :]) & (rank[None, :] > rank[:, None])
        near[:, :, :n] &= ~later[:, None, :]
        if unseen is not None:
            near[:, :, n:] &= ~unseen[:, None, :]
        hit = near.any(axis=1)
        first = np.where(hit, near.argmax(axis=1), 10**6)
        for i, npc in enumerate(self.npcs):
            k = int(first[i].argmin())
            gap, lead_v = math.inf, 0.0
            if first[i, k] < 10**6:
                gap = first[i, k] * PATH_STEP_M - npc.extent[0] - obstacles[k, 2]
                lead_v = float(speeds[k])
            stop = self._stop_distance(npc, t, occupied) - npc.extent[0]
            if stop < gap:
                gap, lead_v = stop, 0.0
            self._idm(npc, dt, gap, lead_v)

    def _idm(self, npc: Npc, dt: float, gap: float, lead_v: float) -> None:
        lane = self.town.lanes[npc.path[0]]
        v0 = TURN_SPEED if lane.option in (RoadOption.LEFT, RoadOption.RIGHT) else self.desired_speed
        v = npc.speed
        free = 1.0 - (v / v0) ** 4
        interaction = 0.0
        if math.isfinite(gap):
            s_star = IDM_MIN_GAP + v * IDM_HEADWAY + v * (v - lead_v) / (2 * math.sqrt(IDM_ACCEL * IDM_DECEL))
            interaction = (max(s_star, 0.0) / max(gap, 0.1)) ** 2
        accel = max(IDM_ACCEL * (free - interaction), -9.0)
        npc.speed = max(v + accel * dt, 0.0)
        npc.s += npc.speed * dt
        while npc.s > self.town.lanes[npc.path[0]].line.length and len(npc.path) > 1:
            npc.s -= self.town.lanes[npc.path[0]].line.length
            npc.path.pop(0)
        self._extend_path(npc)
        npc.x, npc.y, npc.yaw = self.town.lanes[npc.path[0]].line.at(npc.s)

    # -- walkers ----------------------------------------------------------------------------------
    def step_walkers(self, dt: float, t: float, vehicles: np.ndarray) -> None:
        """One step of the walkers. ``vehicles``: (V,5) x, y, yaw (radians), half length and half width of every
        vehicle, the ego's included; a walker stands while one of them is just ahead of it, for at most
        WALKER_PATIENCE_S."""
        blocked = self._vehicle_ahead(vehicles)
        for w, stand in zip(self.walkers, blocked):
            if w.waiting:
                w.waiting = not self._may_cross(w, self._node_junction(w.node), t)
                continue
            if not w.crossing and w.at_junction_next and self.rng.random() < self.jaywalk_rate * dt:
                self._jaywalk(w)
            w.standing_s = w.standing_s + dt if stand else 0.0
            if stand and w.standing_s <= WALKER_PATIENCE_S:
                continue
            w.s += w.speed * dt
            if w.s >= w.leg.length:
                self._next_leg(w, t)
            w.x, w.y, w.yaw = w.leg.at(w.s)

    def _may_cross(self, w: Walker, junction: int, t: float) -> bool:
        """Whether a walker at a crosswalk of ``junction`` starts across now: in the pedestrian phase, while half its
        crossing time is left, or in the phase's first half where a crossing takes longer than the phase (a
        slow walker on a wide road would otherwise wait for good, and the cars that yield to it with it)."""
        left = self.town.pedestrian_walk_time(junction, t)
        return left > min(0.5 * w.leg.length / w.speed, 0.5 * self.town.traffic.pedestrian_phase_s)

    def _vehicle_ahead(self, vehicles: np.ndarray) -> np.ndarray:
        """(W,) whether each walker's box, moved WALKER_LOOK_M ahead, overlaps a vehicle's box (the overlap that the
        simulator counts as a collision)."""
        blocked = np.zeros(len(self.walkers), dtype=bool)
        if not self.walkers or not len(vehicles):
            return blocked
        xy = np.array([(w.x, w.y) for w in self.walkers])
        reach = vehicles[:, 3] + vehicles[:, 4] + max(WALKER_LOOK_M, default=0.0) + 1.0
        near = np.hypot(*(xy[:, None, :] - vehicles[None, :, :2]).transpose(2, 0, 1)) < reach  # (W,V)
        for i in np.flatnonzero(near.any(axis=1)):
            w, v = self.walkers[i], vehicles[near[i]]
            boxes = box_corners(v[:, 0], v[:, 1], v[:, 2], v[:, 3], v[:, 4])
            for d in WALKER_LOOK_M:
                x, y = w.x + d * math.cos(w.yaw), w.y + d * math.sin(w.yaw)
                probe = box_corners(np.array([x]), np.array([y]), np.array([w.yaw]), np.array([w.extent[0]]), np.array([w.extent[1]]))[0]
                if obb_overlap(probe, boxes).any():
                    blocked[i] = True
                    break
        return blocked

    def _node_junction(self, node: tuple[int, int]) -> int:
        road = self.town.roads[self.town.sidewalks[node[0]].road]
        return road.b if node[1] == 1 else road.a

    def _node_point(self, node: tuple[int, int]) -> np.ndarray:
        line = self.town.sidewalks[node[0]].line
        return line.points[-1] if node[1] == 1 else line.points[0]

    def _next_leg(self, w: Walker, t: float) -> None:
        """At the end of a leg: walk the next sidewalk, or at a junction round the corner or cross."""
        if not w.at_junction_next:
            line = self.town.sidewalks[w.node[0]].line
            points = line.points if w.node[1] == 0 else line.points[::-1]
            self._set_leg(w, points, (w.node[0], 1 - w.node[1]), crossing=False, at_junction_next=True)
            return
        jid = self._node_junction(w.node)
        if self.town.junctions[jid].lit and self.rng.random() < 0.4:
            target = (self._other_side(w.node[0]), w.node[1])
            self._set_leg(w, np.array([self._node_point(w.node), self._node_point(target)]), target,
                          crossing=True, at_junction_next=False)
            w.waiting = not self._may_cross(w, jid, t)
            return
        target = self._corner_neighbour(w.node, jid)
        points = np.array([self._node_point(w.node), self._corner_point(w.node, target), self._node_point(target)])
        self._set_leg(w, points, target, crossing=False, at_junction_next=False)

    def _set_leg(self, w: Walker, points: np.ndarray, node: tuple[int, int], crossing: bool, at_junction_next: bool) -> None:
        keep = np.concatenate([[True], np.hypot(*np.diff(points, axis=0).T) > 1e-6])
        points = points[keep]
        if len(points) < 2:
            points = np.vstack([points[0], points[0] + 1e-3])
        w.leg, w.s, w.node, w.crossing, w.at_junction_next = Polyline(points), 0.0, node, crossing, at_junction_next

    def _other_side(self, sidewalk_id: int) -> int:
        road = self.town.sidewalks[sidewalk_id].road
        return next(s.id for s in self.town.sidewalks if s.road == road and s.id != sidewalk_id)

    def _corner_neighbour(self, node: tuple[int, int], jid: int) -> tuple[int, int]:
        here = self._node_point(node)
        road = self.town.sidewalks[node[0]].road
        best, best_d = node, math.inf
        for rid in self.town.junctions[jid].roads:
            if rid == road:
                continue
            for s in (s for s in self.town.sidewalks if s.road == rid):
                end = 1 if self.town.roads[rid].b == jid else 0
                d = float(np.hypot(*(self._node_point((s.id, end)) - here)))
                if d < best_d:
                    best, best_d = (s.id, end), d
        return best

    def _corner_point(self, a: tuple[int, int], b: tuple[int, int]) -> np.ndarray:
        """Where the two sidewalks' end directions meet (the outer corner), or the midpoint if parallel."""
        pa, pb = self._node_point(a), self._node_point(b)
        la, lb = self.town.sidewalks[a[0]].line, self.town.sidewalks[b[0]].line
        da = la.points[-1] - la.points[-2] if a[1] == 1 else la.points[0] - la.points[1]
        db = lb.points[-1] - lb.points[-2] if b[1] == 1 else lb.points[0] - lb.points[1]
        m = np.array([da, -db]).T
        if abs(np.linalg.det(m)) < 1e-6:
            return (pa + pb) / 2
        ta, tb = np.linalg.solve(m, pb - pa)
        if ta < 0 or tb < 0 or ta * np.linalg.norm(da) > 30:
            return (pa + pb) / 2
        return pa + ta * da

    def _jaywalk(self, w: Walker) -> None:
        """Cross the road straight from here, then walk on along the far sidewalk."""
        other = self.town.sidewalks[self._other_side(w.node[0])]
        here = np.array([w.x, w.y])
        s_other, _ = other.line.project(here)
        end = int(self.rng.integers(2))
        rest = other.line.sample(s_other, other.line.length, 1.0) if end == 1 else other.line.sample(0.0, s_other, 1.0)[::-1]
        self._set_leg(w, np.vstack([here, rest]), (other.id, end), crossing=True, at_junction_next=True)
