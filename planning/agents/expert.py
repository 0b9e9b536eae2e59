"""The expert driver: a privileged autopilot that follows the route, keeps the speed limit, slows for
curves, stops at red lights and yields to vehicles and pedestrians in its path. It reads only the
Observation's ground-truth fields (route, actors, light), never the images, so it runs on any backend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from drivestack.planning.control import ControllerConfig, WaypointController
from drivestack.sim.agent import Agent, AgentDebug
from drivestack.sim.conventions import ActorKind, TrafficLightState
from drivestack.sim.interface import Observation, VehicleControl
from drivestack.sim.settings import SimConfig

YELLOW_DECEL = 4.0  # m/s^2: a firm stop; on yellow the expert goes on only if this stop no longer fits before the line


@dataclass
class ExpertConfig:
    comfort_decel: float = 2.5  # (float) m/s^2 used to plan stops behind vehicles and pedestrians
    light_decel: float = 1.5  # (float) m/s^2 used to plan stops at lights: gentle and early, so a camera policy sees the stop coming
    max_lateral_accel: float = 1.8  # (float) m/s^2 in curves
    stop_margin: float = 2.0  # (float) metres between the front bumper and a stop line
    vehicle_gap: float = 4.0  # (float) metres kept to a vehicle ahead
    pedestrian_gap: float = 5.0  # (float) metres kept to a pedestrian in the path
    corridor_margin: float = 0.7  # (float) metres added to half widths for the path corridor
    horizon_s: float = 2.0  # (float) seconds of constant-velocity prediction of other actors
    lookahead_m: float = 40.0  # (float) how far ahead obstacles are considered
    controller: ControllerConfig = field(default_factory=ControllerConfig)


class ExpertAgent(Agent):
    """Rule-based privileged driver; deterministic. ``target_speed`` is its last speed label."""

    def __init__(self, config: ExpertConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExpertConfig()

    def setup(self, sim_config: SimConfig) -> None:
        self.controller = WaypointController(self.config.controller, sim_config.dt)
        self.target_speed = 0.0
        self._go_on_yellow: dict[int, bool] = {}  # decided once per light, when it is first seen yellow

    def run_step(self, obs: Observation) -> VehicleControl:
        speed = obs.ego.speed
        target = min(obs.speed_limit, self._curve_speed(obs.route))
        target = min(target, self._light_speed(obs, speed))
        target = min(target, self._obstacle_speed(obs))
        self.target_speed = target
        self.debug = AgentDebug(target_speed=target)
        return self.controller.control(obs.route, target, speed)

    def _stop_speed(self, distance: float, decel: float | None = None) -> float:
        """Highest speed from which a stop within ``distance`` metres at ``decel`` (default: comfort_decel) is possible."""
        decel = self.config.comfort_decel if decel is None else decel
        return math.sqrt(2.0 * decel * max(distance, 0.0)) if distance > 0.3 else 0.0

    def _curve_speed(self, route: np.ndarray) -> float:
        seg = np.diff(route[:25], axis=0)
        seg = seg[np.hypot(seg[:, 0], seg[:, 1]) > 1e-3]
        if len(seg) < 3:
            return math.inf
        heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        curvature = np.abs(np.diff(heading)).max() / 1.0
        return math.sqrt(self.config.max_lateral_accel / max(curvature, 1e-4))

    def _light_speed(self, obs: Observation, speed: float) -> float:
        light = obs.traffic_light
        if light.state != TrafficLightState.YELLOW:
            self._go_on_yellow.pop(light.actor_id, None)
        if light.state not in (TrafficLightState.RED, TrafficLightState.YELLOW):
            return math.inf
        to_line = light.distance - obs.ego.extent[0]  # front bumper to the stop line
        distance = to_line - self.config.stop_margin
        if light.state == TrafficLightState.YELLOW:
            # Decide once (no flip-flopping in the dilemma zone): go only if a firm stop before the line no longer
            # fits. (Measured to the margin before it, a car standing at the line went on yellow and crossed on red.)
            go = self._go_on_yellow.setdefault(light.actor_id, to_line < speed**2 / (2 * YELLOW_DECEL))
            if go:
                return math.inf
        if distance < -obs.ego.extent[0]:
            return math.inf
        return self._stop_speed(distance, self.config.light_decel)

    def _obstacle_speed(self, obs: Observation) -> float:
        """Speed limit from the nearest actor (now or predicted) inside the corridor along the route."""
        c = self.config
        pose = obs.ego.pose
        yaw = math.radians(pose.yaw)
        cos, sin = math.cos(yaw), math.sin(yaw)
        route = obs.route
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(route, axis=0).T))])
        best = math.inf
        times = np.arange(0.0, c.horizon_s + 1e-6, 0.5)
        for actor in obs.actors:
            dx, dy = actor.pose.x - pose.x, actor.pose.y - pose.y
            vx, vy = actor.velocity
            px = dx + times * vx
            py = dy + times * vy
            local = np.stack([px * cos + py * sin, -px * sin + py * cos], axis=1)
            if local[:, 0].max() < -2.0 or np.hypot(local[:, 0], local[:, 1]).min() > c.lookahead_m + 5:
                continue
            d = np.hypot(route[None, :, 0] - local[:, None, 0], route[None, :, 1] - local[:, None, 1])
            k = d.argmin(axis=1)
            lateral = d[np.arange(len(times)), k]
            width = obs.ego.extent[1] + min(actor.extent[0], actor.extent[1]) + c.corridor_margin
            inside = lateral < width
            if actor.kind == ActorKind.VEHICLE:
                inside &= times <= 1.0
            if not inside.any():
                continue
            along = cum[k[inside]].min() - obs.ego.extent[0] - actor.extent[0]
            if along < -1.5:
                continue
            gap = c.pedestrian_gap if actor.kind == ActorKind.PEDESTRIAN else c.vehicle_gap
            best = min(best, self._stop_speed(along - gap))
        return best
