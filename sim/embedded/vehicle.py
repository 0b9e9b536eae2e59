"""Ego vehicle dynamics: a kinematic bicycle model with a speed-dependent steering response and a
throttle/brake mapping to acceleration, driven by CARLA-style controls."""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivestack.sim.interface import VehicleControl


@dataclass(frozen=True)
class VehicleParams:
    wheelbase: float = 2.87  # metres
    max_steer_deg: float = 35.0  # front wheel angle at steer = 1 and low speed
    steer_speed_scale: float = 20.0  # m/s at which the steering response halves
    steer_time_constant: float = 0.1  # seconds, first-order lag of the wheel angle
    max_accel: float = 3.5  # m/s^2 at full throttle from standstill
    max_brake: float = 8.0  # m/s^2 at full brake
    max_speed: float = 25.0  # m/s, top speed (throttle authority fades to zero there)
    rolling: float = 0.15  # m/s^2 rolling resistance
    drag: float = 0.0015  # 1/m, aerodynamic drag coefficient (a = drag * v^2)
    extent: tuple[float, float, float] = (2.45, 1.05, 0.75)  # half length, width, height


@dataclass
class BicycleState:
    x: float
    y: float
    yaw: float  # radians
    speed: float = 0.0  # m/s, signed
    wheel_angle: float = 0.0  # radians
    acceleration: float = 0.0


def step_bicycle(state: BicycleState, control: VehicleControl, dt: float, p: VehicleParams) -> BicycleState:
    """Advance the ego by ``dt`` seconds under ``control`` (rear-axle-free kinematic bicycle at the centre)."""
    direction = -1.0 if control.reverse else 1.0
    v = state.speed
    drive = control.throttle * p.max_accel * max(0.0, 1.0 - abs(v) / p.max_speed) * direction
    braking = p.max_brake * (1.0 if control.hand_brake else control.brake)
    resist = p.rolling + p.drag * v * v
    if abs(v) < 1e-3 and abs(drive) <= braking + resist:
        v_new, accel = 0.0, 0.0
    else:
        moving = math.copysign(1.0, v) if abs(v) >= 1e-3 else math.copysign(1.0, drive)
        accel = drive - moving * (braking + resist)
        v_new = v + accel * dt
        if v != 0.0 and v_new * v < 0.0 and abs(drive) < braking + resist:
            v_new = 0.0  # brakes and resistance stop the car, never reverse it
        accel = (v_new - v) / dt
    target = control.steer * math.radians(p.max_steer_deg) / (1.0 + (v / p.steer_speed_scale) ** 2)
    alpha = 1.0 - math.exp(-dt / p.steer_time_constant)
    wheel = state.wheel_angle + alpha * (target - state.wheel_angle)
    v_mid = 0.5 * (v + v_new)
    yaw = state.yaw + v_mid / p.wheelbase * math.tan(wheel) * dt
    heading = 0.5 * (state.yaw + yaw)
    return BicycleState(
        x=state.x + v_mid * math.cos(heading) * dt,
        y=state.y + v_mid * math.sin(heading) * dt,
        yaw=(yaw + math.pi) % (2 * math.pi) - math.pi,
        speed=v_new,
        wheel_angle=wheel,
        acceleration=accel,
    )
