"""Configuration of the simulators (the ``sim:`` section of every YAML config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class CameraConfig:
    """One camera: resolution, horizontal FOV and mount pose in the vehicle frame (x fwd, y right, z up)."""

    name: str = "front"
    width: int = 320  # (int) image width in pixels
    height: int = 160  # (int) image height in pixels
    fov: float = 90.0  # (float) horizontal field of view, degrees
    x: float = 1.3  # (float) mount position, metres forward of the vehicle centre
    y: float = 0.0  # (float) metres right
    z: float = 1.6  # (float) metres above the ground
    roll: float = 0.0  # (float) degrees
    pitch: float = 0.0  # (float) degrees, positive looks up
    yaw: float = 0.0  # (float) degrees, positive looks right

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"camera '{self.name}': width and height must be >= 8, got {self.width}x{self.height}")
        if not 0.0 < self.fov < 180.0:
            raise ValueError(f"camera '{self.name}': fov must be in (0, 180), got {self.fov}")


@dataclass
class TownConfig:
    """Procedural town layout (embedded simulator)."""

    seed: int = 0  # (int) town seed: the same seed gives the same town
    grid: int = 5  # (int) junctions per side of the road grid
    block: float = 70.0  # (float) mean distance between neighbouring junctions, metres
    jitter: float = 6.0  # (float) random displacement of junctions, metres
    curved_fraction: float = 0.3  # (float) share of roads that bend
    removed_fraction: float = 0.08  # (float) share of grid roads removed (gives 3-way junctions)
    max_lanes: int = 2  # (int) lanes per direction are drawn from 1..max_lanes
    lane_width: float = 3.5  # (float) metres
    sidewalk_width: float = 3.0  # (float) metres
    map_resolution: float = 0.1  # (float) metres per texel of the ground map

    def __post_init__(self) -> None:
        if self.grid < 2:
            raise ValueError(f"town.grid must be >= 2, got {self.grid}")
        if not 1 <= self.max_lanes <= 3:
            raise ValueError(f"town.max_lanes must be 1..3, got {self.max_lanes}")


@dataclass
class TrafficConfig:
    """Other road users and traffic lights (embedded simulator)."""

    vehicles: int = 20  # (int) NPC vehicles
    pedestrians: int = 20  # (int) pedestrians on sidewalks
    jaywalk_rate: float = 0.01  # (float) chance per second that a walking pedestrian crosses mid-block
    green_s: float = 8.0  # (float) green time of each junction approach, seconds
    yellow_s: float = 2.0  # (float) yellow time, seconds
    all_red_s: float = 1.5  # (float) all-red clearance after each yellow, seconds
    pedestrian_phase_s: float = 6.0  # (float) all-red phase in which pedestrians cross at crosswalks
    npc_speed: float = 8.0  # (float) NPC desired speed, m/s


@dataclass
class AppearanceConfig:
    """Ranges the per-episode appearance is drawn from (sun, colours, road wear)."""

    sun_elevation: tuple[float, float] = (15.0, 75.0)  # (deg) range of the sun's elevation
    brightness: tuple[float, float] = (0.6, 1.2)  # (float) range of the light intensity multiplier
    road_wear: tuple[float, float] = (0.0, 0.6)  # (float) range of road wear (patches, cracks)


@dataclass
class CarlaConfig:
    """Connection to a CARLA server (``backend: carla``)."""

    host: str = "localhost"  # (str) server host
    port: int = 2000  # (int) server RPC port
    timeout_s: float = 10.0  # (float) client timeout, seconds
    town: str = "Town01"  # (str) map to load
    traffic_manager_port: int = 8000  # (int) Traffic Manager port
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"  # (str) ego vehicle blueprint id
    weather: str = "ClearNoon"  # (str) a carla.WeatherParameters preset name
    sensor_timeout_s: float = 2.0  # (float) how long to wait for a sensor frame


@dataclass
class SimConfig:
    """Simulator selection and settings shared by every backend."""

    backend: Literal["embedded", "carla"] = "embedded"  # (str) which simulator
    dt: float = 0.05  # (float) fixed time step, seconds (20 Hz)
    cameras: list[CameraConfig] = field(default_factory=lambda: [CameraConfig()])
    speed_limit: float = 8.33  # (float) m/s (30 km/h) the expert keeps to
    route_length: float = 300.0  # (float) length of random routes, metres
    route_deviation_m: float = 30.0  # (float) leaving the route by more ends it (leaderboard)
    blocked_s: float = 180.0  # (float) standing still this long ends the route (leaderboard)
    min_box_pixels: int = 12  # (int) visible pixels an object needs to get a 2D box
    town: TownConfig = field(default_factory=TownConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    carla: CarlaConfig = field(default_factory=CarlaConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.dt <= 0.5:
            raise ValueError(f"dt must be in (0, 0.5] seconds, got {self.dt}")
        if not self.cameras:
            raise ValueError("at least one camera is needed")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
