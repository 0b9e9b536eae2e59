"""Lateral and longitudinal PID controllers that turn waypoints and a target speed into
``VehicleControl``; shared by the expert driver and the learned agent."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from drivestack.sim.interface import VehicleControl


@dataclass
class PIDGains:
    kp: float
    ki: float
    kd: float
    window: int = 20  # steps of error history for the integral and derivative


@dataclass
class ControllerConfig:
    """Gains of the waypoint-following controller (``planning.controller`` in configs)."""

    lateral: PIDGains = field(default_factory=lambda: PIDGains(kp=1.25, ki=0.2, kd=0.3))  # steering on heading error
    longitudinal: PIDGains = field(default_factory=lambda: PIDGains(kp=0.6, ki=0.1, kd=0.05))  # throttle on speed error
    lookahead_min: float = 3.0  # (float) metres, lookahead at standstill
    lookahead_gain: float = 0.5  # (float) seconds: lookahead grows with speed
    max_throttle: float = 0.75  # (float)
    brake_ratio: float = 1.5  # (float) brake = ratio * speed excess beyond brake_margin
    brake_margin: float = 0.4  # (float) m/s over the target before braking


class PID:
    """PID on a scalar error with a sliding-window integral (as CARLA's agents' controllers)."""

    def __init__(self, gains: PIDGains, dt: float):
        self.gains, self.dt = gains, dt
        self.errors: deque[float] = deque(maxlen=gains.window)

    def reset(self) -> None:
        self.errors.clear()

    def __call__(self, error: float) -> float:
        self.errors.append(error)
        derivative = (self.errors[-1] - self.errors[-2]) / self.dt if len(self.errors) > 1 else 0.0
        integral = sum(self.errors) * self.dt
        g = self.gains
        return g.kp * error + g.ki * integral + g.kd * derivative


class WaypointController:
    """Follow waypoints in the ego frame (x forward, y right) at a target speed."""

    def __init__(self, config: ControllerConfig, dt: float):
        self.config = config
        self.lateral = PID(config.lateral, dt)
        self.longitudinal = PID(config.longitudinal, dt)

    def reset(self) -> None:
        self.lateral.reset()
        self.longitudinal.reset()

    def steer(self, waypoints: np.ndarray, speed: float) -> float:
        """Steer towards the waypoint at the speed-dependent lookahead distance."""
        c = self.config
        lookahead = c.lookahead_min + c.lookahead_gain * max(speed, 0.0)
        dist = np.hypot(waypoints[:, 0], waypoints[:, 1])
        ahead = np.flatnonzero((dist >= lookahead) & (waypoints[:, 0] > 0.1))
        target = waypoints[ahead[0]] if len(ahead) else waypoints[-1]
        angle = math.atan2(target[1], max(target[0], 1e-3))
        return float(np.clip(self.lateral(angle), -1.0, 1.0))

    def speed_control(self, target_speed: float, speed: float) -> tuple[float, float]:
        """(throttle, brake) to reach ``target_speed``."""
        c = self.config
        if target_speed < 0.05 and speed < 0.3:
            self.longitudinal.reset()
            return 0.0, 1.0
        excess = speed - target_speed
        if excess > c.brake_margin:
            self.longitudinal.reset()
            return 0.0, float(min(c.brake_ratio * (excess - c.brake_margin) + 0.2, 1.0))
        throttle = self.longitudinal(target_speed - speed)
        return float(np.clip(throttle, 0.0, c.max_throttle)), 0.0

    def control(self, waypoints: np.ndarray, target_speed: float, speed: float) -> VehicleControl:
        throttle, brake = self.speed_control(target_speed, speed)
        return VehicleControl(throttle=throttle, steer=self.steer(waypoints, speed), brake=brake)
