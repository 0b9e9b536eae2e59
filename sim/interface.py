"""The one simulator interface every backend implements, and the data it returns.

A simulator is created from a :class:`~sim.settings.SimConfig`, started with ``reset(seed, route)``
and advanced by ``step(control)`` at a fixed time step; each call returns an :class:`Observation`.
Units are SI; poses and controls follow CARLA (x forward, y right, z up; steer > 0 turns right).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from drivestack.sim.camera import Pose
from drivestack.sim.conventions import ActorKind, RoadOption, TrafficLightState

RGB_ONLY = "rgb"  # Simulator.step(control, render=RGB_ONLY): each camera's RGB image, no truth images or boxes


class SimulatorError(RuntimeError):
    """A simulator that cannot go on (lost connection, missing sensor frame, bad route...)."""


@dataclass
class VehicleControl:
    """Controls as in ``carla.VehicleControl``; values are clipped to their ranges, NaN is refused."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False

    def __post_init__(self) -> None:
        for name in ("throttle", "steer", "brake"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"VehicleControl.{name} must be finite, got {value}")
        self.throttle = min(max(float(self.throttle), 0.0), 1.0)
        self.steer = min(max(float(self.steer), -1.0), 1.0)
        self.brake = min(max(float(self.brake), 0.0), 1.0)


@dataclass
class RouteSpec:
    """Where to drive: a town and trip points (world x, y). No trip points: a random route from the seed."""

    town: int | str = 0  # embedded: town seed (int); CARLA: map name such as "Town03"
    waypoints: list[tuple[float, float]] = field(default_factory=list)
    length: float = 300.0  # target length of a random route, metres
    name: str = ""


@dataclass
class Box2D:
    """A visible object in one camera: pixel box (x1, y1, x2, y2), exclusive of x2/y2."""

    actor_id: int
    kind: ActorKind
    tag: int  # CARLA semantic tag of the object
    x1: int
    y1: int
    x2: int
    y2: int
    visibility: float  # visible pixels / pixels of the unoccluded silhouette, 0..1
    light_state: TrafficLightState | None = None  # for traffic lights

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass
class CameraFrame:
    """One camera's outputs for one frame; every array is HxW and aligned pixel for pixel. A step rendered
    with ``render=RGB_ONLY`` may leave the truth out: ``semantic``, ``depth`` and ``instance`` None, no boxes."""

    name: str
    rgb: np.ndarray  # uint8 HxWx3
    semantic: np.ndarray | None  # uint8 HxW, CARLA tag ids
    depth: np.ndarray | None  # float32 HxW, metres along the optical axis (1000 for sky)
    instance: np.ndarray | None  # uint16 HxW, actor id or 0
    K: np.ndarray  # 3x3 intrinsics
    camera_to_world: np.ndarray  # 4x4
    boxes: list[Box2D]


@dataclass
class EgoState:
    pose: Pose
    speed: float  # m/s, signed (negative in reverse)
    acceleration: float  # m/s^2 along the heading
    extent: tuple[float, float, float]  # half length, half width, half height


@dataclass
class ActorState:
    """Privileged ground truth about another actor (what a CARLA world query would give)."""

    id: int
    kind: ActorKind
    pose: Pose
    extent: tuple[float, float, float]
    velocity: tuple[float, float]  # world frame, m/s


@dataclass
class TrafficLightInfo:
    """The light that governs the ego lane: its state and the distance to its stop line."""

    state: TrafficLightState = TrafficLightState.GREEN
    distance: float = math.inf  # metres along the route to the stop line
    actor_id: int = 0


@dataclass
class Collision:
    kind: ActorKind
    actor_id: int


@dataclass
class Events:
    """What happened during the last step."""

    collisions: list[Collision] = field(default_factory=list)
    red_light: bool = False  # crossed a stop line while the light was red
    off_road: bool = False  # a wheel left the drivable area
    lane_invasion: bool = False  # entered a lane of the opposite direction
    route_deviation: bool = False  # more than route_deviation_m from the route (ends the route)
    blocked: bool = False  # stood still longer than blocked_s (ends the route)
    route_completed: bool = False


@dataclass
class Observation:
    frame: int
    time: float  # seconds since reset
    cameras: dict[str, CameraFrame]  # empty when the step was not rendered
    ego: EgoState
    route: np.ndarray  # (N, 2) route ahead in the ego frame (x fwd, y right), 1 m apart
    command: RoadOption
    target_point: np.ndarray  # (2,) next point of the sparse route plan, ego frame (sim.route_plan)
    traffic_light: TrafficLightInfo
    events: Events
    route_progress: float  # metres driven along the route
    route_length: float  # metres
    actors: list[ActorState]  # privileged: other actors near the ego
    speed_limit: float  # m/s

    @property
    def done(self) -> bool:
        e = self.events
        return e.route_completed or e.route_deviation or e.blocked


class Simulator(ABC):
    """A driving simulator behind one interface; use as a context manager."""

    dt: float

    @abstractmethod
    def reset(self, seed: int, route: RouteSpec | None = None) -> Observation:
        """Start an episode: traffic and appearance from ``seed``, the given route (or a random one)."""

    @abstractmethod
    def step(self, control: VehicleControl, render: bool | str = True) -> Observation:
        """Apply ``control`` for one fixed time step. ``render=False`` skips the cameras; ``render=RGB_ONLY``
        asks only for their RGB images (a backend may give the truth too)."""

    def top_down_map(self, trail: np.ndarray, marks: Sequence[tuple[str, float, float]] = (), size: int = 900) -> np.ndarray | None:
        """The town seen from above with the route, ``trail`` ((N, 2) world x, y driven), start, route end, where
        the drive ended and ``marks`` ((label, x, y), e.g. infractions) drawn on it with a legend
        (:func:`drivestack.sim.visualize.annotate_map`), as an RGB image about ``size`` pixels wide; None where
        the backend has no map to draw."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release everything the simulator holds."""

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
