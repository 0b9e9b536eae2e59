"""Route progress and infractions as the leaderboard counts them, computed from plain per-tick data.

Rules follow scenario_runner's atomic criteria (CollisionTest, RunningRedLightTest, InRouteTest,
RouteCompletionTest, ActorBlockedTest); the CARLA calls that feed them live in the backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from drivestack.sim.carla.routing import LaneKey, Route
from drivestack.sim.conventions import ActorKind, TrafficLightState
from drivestack.sim.interface import Collision

COLLISION_RADIUS_M = 5.0  # a collision this close to the last counted one is the same collision
COLLISION_SAME_ACTOR_S = 5.0  # a collision with the same actor within this time is the same collision
MIN_SPEED = 0.1  # m/s: slower counts as standing (no collision blame; blocked timer runs)
RED_LIGHT_DISTANCE_M = 15.0  # lights whose trigger area is farther are not checked
ROUTE_WINDOW_M = 30.0  # progress is searched this far ahead of the last position on the route
COMPLETION_SHARE = 0.99  # route completed beyond this share of its length...
COMPLETION_DISTANCE_M = 10.0  # ...and this close to its end


def collision_kind(type_id: str) -> ActorKind:
    """ActorKind of a collision partner from its blueprint id (vehicle.*, walker.*, anything else static)."""
    if type_id.startswith("vehicle."):
        return ActorKind.VEHICLE
    if type_id.startswith("walker."):
        return ActorKind.PEDESTRIAN
    return ActorKind.STATIC


class CollisionFilter:
    """Counts a collision once: not again with the same actor within 5 s, within 5 m of the last
    counted one, or while the ego stands (< 0.1 m/s)."""

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._last_time = -math.inf
        self._last_xy: tuple[float, float] | None = None

    def update(self, partners: list[tuple[int, str]], time: float, x: float, y: float, speed: float) -> list[Collision]:
        """``partners``: (actor id, type_id) of this step's collision events; returns the ones that count."""
        counted = []
        for actor_id, type_id in partners:
            if abs(speed) < MIN_SPEED:
                continue
            if actor_id == self._last_id and time - self._last_time <= COLLISION_SAME_ACTOR_S:
                continue
            if self._last_xy is not None and math.dist(self._last_xy, (x, y)) <= COLLISION_RADIUS_M:
                continue
            counted.append(Collision(collision_kind(type_id), actor_id))
            self._last_id, self._last_time, self._last_xy = actor_id, time, (x, y)
        return counted


def segments_intersect(p1, p2, q1, q2) -> bool:
    """Whether 2D segments p1-p2 and q1-q2 share a point (touching counts)."""

    def orient(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on(a, b, c) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    d1, d2, d3, d4 = orient(q1, q2, p1), orient(q1, q2, p2), orient(p1, p2, q1), orient(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0) and d1 != 0 and d2 != 0) and ((d3 > 0) != (d4 > 0) and d3 != 0 and d4 != 0):
        return True
    return (
        (d1 == 0 and on(q1, q2, p1))
        or (d2 == 0 and on(q1, q2, p2))
        or (d3 == 0 and on(p1, p2, q1))
        or (d4 == 0 and on(p1, p2, q2))
    )


@dataclass
class StopLine:
    """A stop waypoint of a traffic light (``TrafficLight.get_stop_waypoints()``)."""

    x: float
    y: float
    yaw: float  # degrees, direction of travel
    lane_width: float
    road_id: int
    lane_id: int


@dataclass
class LightStops:
    """A traffic light's trigger-area centre and the stop lines it controls."""

    actor_id: int
    center: tuple[float, float]
    stops: list[StopLine]


def _rotate(dx: float, dy: float, yaw_deg: float) -> tuple[float, float]:
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return c * dx - s * dy, s * dx + c * dy


class RedLightMonitor:
    """Running a red light, as RunningRedLightTest: the ego's tail crosses a red light's stop line on
    the stop line's lane, driving in its direction; each light counts once in a row."""

    def __init__(self, lights: list[LightStops]):
        self.lights = lights
        self._last_id: int | None = None

    def update(
        self,
        states: dict[int, TrafficLightState],
        x: float,
        y: float,
        yaw: float,
        half_length: float,
        lane_at: Callable[[float, float], tuple[int, int] | None],
    ) -> int | None:
        """The id of the light run in this step, or None. ``lane_at(x, y)``: (road_id, lane_id) there."""
        cx, cy = _rotate(-0.8 * half_length, 0.0, yaw)
        fx, fy = _rotate(-half_length - 1.0, 0.0, yaw)
        tail_close, tail_far = (x + cx, y + cy), (x + fx, y + fy)
        heading = _rotate(1.0, 0.0, yaw)
        tail_lane: tuple[int, int] | None | bool = False  # looked up once, when first needed
        for light in self.lights:
            if light.actor_id == self._last_id or states.get(light.actor_id) != TrafficLightState.RED:
                continue
            if math.dist(light.center, (x, y)) > RED_LIGHT_DISTANCE_M:
                continue
            if tail_lane is False:
                tail_lane = lane_at(*tail_far)
            for stop in light.stops:
                direction = _rotate(1.0, 0.0, stop.yaw)
                if (
                    tail_lane != (stop.road_id, stop.lane_id)
                    or heading[0] * direction[0] + heading[1] * direction[1] <= 0
                ):
                    continue
                lx, ly = _rotate(0.6 * stop.lane_width, 0.0, stop.yaw + 90.0)
                rx, ry = _rotate(0.6 * stop.lane_width, 0.0, stop.yaw - 90.0)
                if segments_intersect(tail_close, tail_far, (stop.x + lx, stop.y + ly), (stop.x + rx, stop.y + ry)):
                    self._last_id = light.actor_id
                    return light.actor_id
        return None


class OppositeLaneMonitor:
    """Entering a lane of the opposite direction: the lane-invasion sensor reported a crossed marking and
    the lane under the ego now runs against its heading (inside junctions there is no lane to judge)."""

    def __init__(self) -> None:
        self._crossed = False
        self._opposite = False
        self._lane: LaneKey | None = None

    def update(self, crossed: bool, lane: LaneKey | None, opposite: bool) -> bool:
        """``crossed``: markings crossed this step; ``lane``: the ego's lane (None in a junction or off road)."""
        self._crossed |= crossed
        if lane is None:
            return False
        entered = opposite and not self._opposite and self._crossed
        if lane != self._lane:
            self._crossed = False
        self._opposite, self._lane = opposite, lane
        return entered


class BlockedMonitor:
    """Standing still (< 0.1 m/s) for longer than ``limit_s``, as ActorBlockedTest."""

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.still_s = 0.0

    def update(self, speed: float, dt: float) -> bool:
        self.still_s = self.still_s + dt if abs(speed) < MIN_SPEED else 0.0
        return self.still_s > self.limit_s


class RouteTracker:
    """Progress along a route (never backwards), deviation from it and its completion."""

    def __init__(self, route: Route, deviation_m: float):
        self.route = route
        self.deviation_m = deviation_m
        self.progress = 0.0
        self.distance = 0.0  # to the route, metres

    def update(self, x: float, y: float) -> tuple[bool, bool]:
        """(deviated, completed) after the ego moved to (x, y)."""
        s = self.route.s
        lo = max(int(np.searchsorted(s, self.progress)) - 2, 0)
        hi = int(np.searchsorted(s, self.progress + ROUTE_WINDOW_M)) + 1
        progress, self.distance = self.route.locate(x, y, lo, hi)
        self.progress = max(self.progress, progress)
        end = self.route.points[-1]
        completed = (
            self.progress >= COMPLETION_SHARE * self.route.length
            and math.dist((x, y), (float(end[0]), float(end[1]))) < COMPLETION_DISTANCE_M
        )
        return self.distance > self.deviation_m, completed
