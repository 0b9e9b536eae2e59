"""Infraction and route events of the embedded simulator: collisions, red lights, leaving the road,
wrong-way lane invasion, route progress, deviation and being blocked (leaderboard rules)."""

from __future__ import annotations

import math

import numpy as np
from drivestack.sim.conventions import ActorKind, Tag, TrafficLightState
from drivestack.sim.embedded.route import Route
from drivestack.sim.embedded.town import Town
from drivestack.sim.embedded.town_scene import TownScene
from drivestack.sim.embedded.traffic import Traffic
from drivestack.sim.embedded.vehicle import BicycleState
from drivestack.sim.geometry import box_corners, obb_overlap, wrap_angle
from drivestack.sim.interface import Collision, Events
from drivestack.sim.settings import SimConfig

DRIVABLE = np.zeros(256, dtype=bool)
DRIVABLE[[Tag.ROADS, Tag.ROAD_LINES]] = True
SEARCH_BACK, SEARCH_AHEAD = 5, 30  # route points around the last progress index to search
COMPLETION_M = 3.0  # route counts as completed this close to its end
BLOCKED_SPEED = 0.1  # m/s


class EventMonitor:
    """Turns the state after each step into :class:`~sim.interface.Events`."""

    def __init__(self, town: Town, scene: TownScene, route: Route, config: SimConfig, extent: tuple[float, float, float]):
        self.town, self.scene, self.route, self.config = town, scene, route, config
        self.hl, self.hw = extent[0], extent[1]
        self.progress_index = 0
        self.still_time = 0.0
        self._in_contact: set[int] = set()

    def initial(self) -> Events:
        return Events()

    def update(self, ego: BicycleState, traffic: Traffic, time: float, dt: float) -> Events:
        previous = self.progress_index
        distance = self._advance(ego)
        events = Events(collisions=self._collisions(ego, traffic))
        events.red_light = self._ran_red(previous, time)
        footprint = box_corners(np.array([ego.x]), np.array([ego.y]), np.array([ego.yaw]), np.array([self.hl]), np.array([self.hw]))[0]
        events.off_road = not self._drivable(footprint).all()
        events.lane_invasion = self._wrong_way(ego)
        events.route_deviation = distance > self.config.route_deviation_m
        self.still_time = self.still_time + dt if abs(ego.speed) < BLOCKED_SPEED else 0.0
        events.blocked = self.still_time > self.config.blocked_s
        events.route_completed = self.route.length - self.progress_index <= COMPLETION_M
        return events

    def _advance(self, ego: BicycleState) -> float:
        """Move the progress index to the route point nearest the ego (never backwards); return the distance."""
        lo = max(self.progress_index - SEARCH_BACK, 0)
        window = self.route.points[lo : self.progress_index + SEARCH_AHEAD]
        d = np.hypot(window[:, 0] - ego.x, window[:, 1] - ego.y)
        k = int(np.argmin(d))
        self.progress_index = max(self.progress_index, lo + k)
        return float(d[k])

    def _ran_red(self, previous: int, time: float) -> bool:
        for stop_idx, light_index in self.route.stops:
            if previous < stop_idx <= self.progress_index:
                light = self.town.lights[light_index]
                if self.town.light_state(light.junction, light.arm, time) == TrafficLightState.RED:
                    return True
        return False

    def _collisions(self, ego: BicycleState, traffic: Traffic) -> list[Collision]:
        ego_box = box_corners(np.array([ego.x]), np.array([ego.y]), np.array([ego.yaw]), np.array([self.hl]), np.array([self.hw]))[0]
        found: list[Collision] = []
        npcs, walkers, obs = traffic.npcs, traffic.walkers, self.scene.obstacles
        groups = [
            (ActorKind.VEHICLE, [n.id for n in npcs], [(n.x, n.y, n.yaw, n.extent[0], n.extent[1]) for n in npcs]),
            (ActorKind.PEDESTRIAN, [w.id for w in walkers], [(w.x, w.y, w.yaw, w.extent[0], w.extent[1]) for w in walkers]),
        ]
        near = np.hypot(obs.x - ego.x, obs.y - ego.y) < 15.0
        statics = np.stack([obs.x[near], obs.y[near], obs.yaw[near], obs.hl[near], obs.hw[near]], axis=1)
        groups.append((ActorKind.STATIC, [-(i + 1) for i in np.flatnonzero(near)], statics.tolist()))
        contact = set()
        for kind, ids, rows in groups:
            r = np.array(rows, dtype=np.float64).reshape(-1, 5)
            close = np.hypot(r[:, 0] - ego.x, r[:, 1] - ego.y) < self.hl + r[:, 3] + self.hw + r[:, 4]
            if not close.any():
                continue
            r, ids = r[close], np.array(ids)[close]
            hit = obb_overlap(ego_box, box_corners(r[:, 0], r[:, 1], r[:, 2], r[:, 3], r[:, 4]))
            for actor_id in ids[hit]:
                contact.add(int(actor_id))
                if int(actor_id) not in self._in_contact:
                    found.append(Collision(kind=kind, actor_id=int(actor_id)))
        self._in_contact = contact
        return found

    def _drivable(self, points: np.ndarray) -> np.ndarray:
        px = ((points - self.scene.origin) / self.scene.res).astype(int)
        h, w = self.scene.tags.shape
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        ok = np.zeros(len(points), dtype=bool)
        ok[inside] = DRIVABLE[self.scene.tags[px[inside, 1], px[inside, 0]]]
        return ok

    def _wrong_way(self, ego: BicycleState) -> bool:
        lane = self.town.nearest_lane(ego.x, ego.y)
        s, offset = lane.line.project(np.array([ego.x, ego.y]))
        if abs(offset) > self.town.config.lane_width / 2:
            return False
        return abs(wrap_angle(lane.line.at(s)[2] - ego.yaw)) > math.pi / 2 and abs(ego.speed) > 0.5
