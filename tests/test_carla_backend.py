"""The CARLA backend without a server: carla's real value types, small stand-ins for server-side objects.

The stand-in server has one straight lane along +x (road 7, lane -1, y = 0) from x = 0 to 400, renders
flat images (the frame number in the RGB values, Roads in the semantic image, a configurable depth) and
records every settings change, spawn and batch.
"""

from __future__ import annotations

import fnmatch
import math
import time

import carla
import numpy as np
import pytest
from drivestack.sim.camera import Pose, intrinsics, project
from drivestack.sim.carla.backend import CarlaSimulator, parse_version
from drivestack.sim.carla.boxes import BoxObject, corners_of, project_box, visibility, visible_boxes
from drivestack.sim.carla.events import (
    BlockedMonitor,
    CollisionFilter,
    LightStops,
    OppositeLaneMonitor,
    RedLightMonitor,
    RouteTracker,
    StopLine,
    segments_intersect,
)
from drivestack.sim.carla.routing import resample
from drivestack.sim.carla.sensors import (
    EventQueue,
    SensorSync,
    decode_depth,
    decode_instance,
    decode_rgb,
    decode_semantic,
    encode_depth,
)
from drivestack.sim.conventions import ActorKind, RoadOption, Tag, TrafficLightState
from drivestack.sim.interface import RGB_ONLY, RouteSpec, SimulatorError, VehicleControl
from drivestack.sim.settings import CameraConfig, CarlaConfig, SimConfig, TrafficConfig

ROAD_END = 400.0

# ---------------------------------------------------------------------------------------------------
# Stand-ins for server-side objects
# ---------------------------------------------------------------------------------------------------


def copy_settings(s: carla.WorldSettings) -> carla.WorldSettings:
    return carla.WorldSettings(
        synchronous_mode=s.synchronous_mode,
        no_rendering_mode=s.no_rendering_mode,
        fixed_delta_seconds=s.fixed_delta_seconds or 0.0,  # None means a variable step
    )


def compose(parent: carla.Transform, child: carla.Transform) -> carla.Transform:
    """parent * child for a parent with only yaw (what the stand-in world needs)."""
    yaw = math.radians(parent.rotation.yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    loc = child.location
    return carla.Transform(
        carla.Location(
            x=parent.location.x + c * loc.x - s * loc.y,
            y=parent.location.y + s * loc.x + c * loc.y,
            z=parent.location.z + loc.z,
        ),
        carla.Rotation(
            pitch=child.rotation.pitch, yaw=parent.rotation.yaw + child.rotation.yaw, roll=child.rotation.roll
        ),
    )


class Attribute:
    def __init__(self, value: str, recommended: list[str] | None = None):
        self.value, self.recommended_values = value, recommended or []

    def __int__(self) -> int:
        return int(self.value)


class Blueprint:
    DEFAULTS = {
        "vehicle.*": {"number_of_wheels": Attribute("4"), "color": Attribute("0,0,0", ["255,0,0", "0,0,255"])},
        "vehicle.bh.crossbike": {"number_of_wheels": Attribute("2")},
        "walker.*": {"is_invincible": Attribute("true"), "speed": Attribute("1.3", ["0.0", "1.3", "2.6"])},
    }

    def __init__(self, id: str):
        self.id = id
        self.attributes: dict[str, Attribute] = {}
        for pattern, attrs in self.DEFAULTS.items():
            if fnmatch.fnmatch(id, pattern):
                self.attributes.update(attrs)

    def set_attribute(self, key: str, value: str) -> None:
        old = self.attributes.get(key)
        self.attributes[key] = Attribute(value, old.recommended_values if old else None)

    def has_attribute(self, key: str) -> bool:
        return key in self.attributes

    def get_attribute(self, key: str) -> Attribute:
        return self.attributes[key]


class Library:
    IDS = [
        "vehicle.lincoln.mkz_2020", "vehicle.tesla.model3", "vehicle.bh.crossbike", "walker.pedestrian.0001",
        "walker.pedestrian.0002", "controller.ai.walker", "sensor.camera.rgb", "sensor.camera.semantic_segmentation",
        "sensor.camera.depth", "sensor.camera.instance_segmentation", "sensor.other.collision",
        "sensor.other.lane_invasion",
    ]  # fmt: skip

    def find(self, id: str) -> Blueprint:
        if id not in self.IDS:
            raise IndexError(f"blueprint '{id}' not found")
        return Blueprint(id)

    def filter(self, pattern: str) -> list[Blueprint]:
        return [Blueprint(i) for i in self.IDS if fnmatch.fnmatch(i, pattern)]


class ActorList(list):
    def filter(self, pattern: str) -> ActorList:
        return ActorList(a for a in self if fnmatch.fnmatch(a.type_id, pattern))


class Actor:
    def __init__(self, id: int, type_id: str, transform: carla.Transform, parent=None, attributes=None):
        self.id, self.type_id, self.transform, self.parent = id, type_id, transform, parent
        self.attributes = attributes or {}
        self.bounding_box = carla.BoundingBox(carla.Location(z=0.75), carla.Vector3D(2.4, 1.0, 0.75))
        self.velocity = carla.Vector3D()
        self.semantic_tags = [int(Tag.CAR)] if type_id.startswith("vehicle") else []
        self.callback = None
        self.stopped = False
        self.controls: list[carla.VehicleControl] = []
        self.light = None
        self.started = False
        self.speed_limit = 30.0  # km/h

    def get_transform(self) -> carla.Transform:
        return compose(self.parent.get_transform(), self.transform) if self.parent else self.transform

    def get_velocity(self) -> carla.Vector3D:
        return self.velocity

    def get_acceleration(self) -> carla.Vector3D:
        return carla.Vector3D()

    def apply_control(self, control: carla.VehicleControl) -> None:
        self.controls.append(control)

    def get_traffic_light(self):
        return self.light

    def get_traffic_light_state(self) -> carla.TrafficLightState:
        return self.light.get_state() if self.light else carla.TrafficLightState.Green

    def get_speed_limit(self) -> float:
        return self.speed_limit

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.stopped = True

    def start(self) -> None:
        self.started = True

    def go_to_location(self, location) -> None:
        pass

    def set_max_speed(self, speed: float) -> None:
        pass


class TrafficLight(Actor):
    def __init__(self, id: int, x: float):
        super().__init__(id, "traffic.traffic_light", carla.Transform(carla.Location(x=x, y=-8.0)))
        self.state = carla.TrafficLightState.Red
        self.trigger_volume = carla.BoundingBox(carla.Location(x=-10.0, y=8.0), carla.Vector3D(5.0, 1.5, 1.0))
        self.stop_x = x - 10.0

    def get_state(self) -> carla.TrafficLightState:
        return self.state

    def get_light_boxes(self) -> list[carla.BoundingBox]:
        return [
            carla.BoundingBox(carla.Location(x=self.transform.location.x, y=-3.0, z=5.0), carla.Vector3D(0.3, 0.3, 0.6))
        ]

    def get_stop_waypoints(self) -> list[Waypoint]:
        return [Waypoint(self.stop_x)]


class Waypoint:
    """A point of the stand-in map's single lane (road 7, lane -1, along +x at y = 0)."""

    road_id, section_id, lane_id, lane_width, is_junction = 7, 0, -1, 3.5, False
    lane_type, lane_change = carla.LaneType.Driving, carla.LaneChange.NONE

    def __init__(self, x: float):
        self.x = x
        self.transform = carla.Transform(carla.Location(x=x, y=0.0, z=0.0), carla.Rotation())

    def next(self, distance: float) -> list[Waypoint]:
        return [Waypoint(self.x + distance)] if self.x + distance <= ROAD_END else []

    def get_left_lane(self) -> None:
        return None

    get_right_lane = get_left_lane


class Map:
    def __init__(self, town: str):
        self.name = f"Carla/Maps/{town}"

    def get_topology(self):
        return [(Waypoint(0.0), Waypoint(ROAD_END))]

    def get_spawn_points(self) -> list[carla.Transform]:
        return [carla.Transform(carla.Location(x=x, y=0.0, z=0.5)) for x in np.arange(5.0, ROAD_END, 20.0)]

    def get_waypoint(self, location, project_to_road=True, lane_type=carla.LaneType.Driving):
        on_road = 0.0 <= location.x <= ROAD_END and abs(location.y) <= 1.75
        return Waypoint(min(max(location.x, 0.0), ROAD_END)) if on_road or project_to_road else None


class Event:
    def __init__(self, frame: int, other_actor=None):
        self.frame, self.other_actor = frame, other_actor


class Image:
    def __init__(self, frame: int, raw: np.ndarray, transform: carla.Transform):
        self.frame, self.transform = frame, transform
        self.height, self.width = raw.shape[:2]
        self.raw_data = raw.tobytes()


class World:
    def __init__(self, server: Server, town: str = "Town01"):
        self.server, self.town = server, town
        self.settings = carla.WorldSettings(synchronous_mode=False, fixed_delta_seconds=0.0)
        self.frame = 100
        self.actors: dict[int, Actor] = {}
        self.next_id = 1000
        self.depth = 1000.0  # what the depth camera sees (scalar or HxW array)
        self.collisions: list = []  # other actors hit in the next tick
        self.stale_after_current = True  # deliver frame-1 images after the current ones (out of order)
        self.fail_tick = False

    def get_settings(self) -> carla.WorldSettings:
        return copy_settings(self.settings)

    def apply_settings(self, settings: carla.WorldSettings) -> None:
        self.settings = copy_settings(settings)
        self.server.log.append(("settings", settings.synchronous_mode, settings.fixed_delta_seconds))

    def get_map(self) -> Map:
        return Map(self.town)

    def get_blueprint_library(self) -> Library:
        return Library()

    def set_weather(self, weather) -> None:
        self.weather = weather

    def set_pedestrians_seed(self, seed: int) -> None:
        pass

    def get_random_location_from_navigation(self) -> carla.Location:
        return carla.Location(x=50.0, y=12.0, z=1.0)

    def add(self, type_id: str, transform: carla.Transform, parent=None, attributes=None) -> Actor:
        cls = TrafficLight if type_id.startswith("traffic") else Actor
        actor = (
            cls(self.next_id, transform.location.x)
            if cls is TrafficLight
            else Actor(self.next_id, type_id, transform, parent, attributes)
        )
        self.actors[actor.id] = actor
        self.next_id += 1
        return actor

    def try_spawn_actor(self, bp: Blueprint, transform: carla.Transform, attach_to=None) -> Actor:
        attributes = {k: a.value for k, a in bp.attributes.items()}
        actor = self.add(bp.id, transform, attach_to, attributes)
        self.server.spawned.append(actor.id)
        return actor

    def get_actors(self) -> ActorList:
        return ActorList(self.actors.values())

    def tick(self, seconds: float = 10.0) -> int:
        if self.fail_tick:
            raise RuntimeError("time-out of 10000ms while waiting for the simulator")
        self.frame += 1
        for sensor in [a for a in self.actors.values() if a.callback and not a.stopped]:
            if sensor.type_id.startswith("sensor.camera"):
                sensor.callback(self.image(sensor, self.frame))
                if self.stale_after_current:
                    sensor.callback(self.image(sensor, self.frame - 1))
            elif sensor.type_id == "sensor.other.collision":
                for other in self.collisions:
                    sensor.callback(Event(self.frame, other))
        self.collisions = []
        return self.frame

    def image(self, sensor: Actor, frame: int) -> Image:
        w, h = int(sensor.attributes["image_size_x"]), int(sensor.attributes["image_size_y"])
        raw = np.zeros((h, w, 4), dtype=np.uint8)
        kind = sensor.type_id.split(".")[-1]
        if kind == "rgb":
            raw[..., :3] = frame % 256
        elif kind == "semantic_segmentation":
            raw[..., 2] = int(Tag.ROADS)
        elif kind == "depth":
            raw = encode_depth(np.broadcast_to(np.float64(self.depth), (h, w)).copy())
        return Image(frame, raw, sensor.get_transform())


class TrafficManager:
    def __init__(self):
        self.synchronous = False
        self.seed = None

    def set_synchronous_mode(self, on: bool) -> None:
        self.synchronous = on

    def set_random_device_seed(self, seed: int) -> None:
        self.seed = seed


class Server:
    """One stand-in CARLA server: a world, a Traffic Manager and the records tests check."""

    def __init__(self, version: str = "0.9.16"):
        self.version = version
        self.log: list = []
        self.spawned: list[int] = []
        self.destroyed: list[int] = []
        self.batches: list[list] = []
        self.world = World(self)
        self.tm = TrafficManager()
        self.loads: list[str] = []

    def client(self, host: str, port: int) -> Client:
        return Client(self, host, port)


class Response:
    error = ""


class Client:
    def __init__(self, server: Server, host: str, port: int):
        self.server = server

    def set_timeout(self, seconds: float) -> None:
        pass

    def get_world(self) -> World:
        return self.server.world

    def get_server_version(self) -> str:
        return self.server.version

    def get_client_version(self) -> str:
        return "0.9.16"

    def load_world(self, name: str) -> World:
        self.server.loads.append(name)
        self.server.world = World(self.server, name)  # a fresh world: default settings, no actors
        return self.server.world

    def get_trafficmanager(self, port: int) -> TrafficManager:
        return self.server.tm

    def apply_batch_sync(self, commands, do_tick=False) -> list[Response]:
        self.server.batches.append(commands)
        for c in commands:
            if isinstance(c, carla.command.DestroyActor):
                actor = self.server.world.actors.pop(c.actor_id)
                assert actor.type_id.startswith("sensor") is False or actor.stopped, "sensor destroyed while listening"
                assert not actor.type_id.startswith("controller") or actor.stopped, "walker controller not stopped"
                self.server.destroyed.append(c.actor_id)
        return [Response() for _ in commands]


def make_config(**traffic) -> SimConfig:
    return SimConfig(
        backend="carla",
        cameras=[CameraConfig()],
        traffic=TrafficConfig(**({"vehicles": 0, "pedestrians": 0} | traffic)),
        carla=CarlaConfig(sensor_timeout_s=0.2),
    )


TRIP = RouteSpec(town="Town01", waypoints=[(10.0, 0.0), (200.0, 0.0)])

# ---------------------------------------------------------------------------------------------------
# Connection, synchronous mode, cleanup
# ---------------------------------------------------------------------------------------------------


def test_no_server_gives_a_clear_error():
    class DeadClient(Client):
        def get_world(self):
            raise RuntimeError("time-out of 10000ms while waiting for the simulator, make sure it is running")

    with pytest.raises(SimulatorError, match="no CARLA server at localhost:2000"):
        CarlaSimulator(make_config(), client_factory=lambda host, port: DeadClient(Server(), host, port))


def test_old_servers_are_refused():
    with pytest.raises(SimulatorError, match="0.9.14 to 0.9.16"):
        CarlaSimulator(make_config(), client_factory=Server(version="0.9.13").client)
    assert parse_version("0.9.15-dirty") == (0, 9, 15) and parse_version("dev") is None


def test_synchronous_set_up_and_restore_after_an_exception():
    server = Server()
    with pytest.raises(ValueError, match="agent crashed"):
        with CarlaSimulator(make_config(vehicles=3, pedestrians=2), client_factory=server.client) as sim:
            assert server.world.settings.synchronous_mode and server.world.settings.fixed_delta_seconds == 0.05
            assert server.tm.synchronous
            sim.reset(seed=7, route=TRIP)
            assert server.tm.seed == 7
            sim.step(VehicleControl(throttle=0.5))
            raise ValueError("agent crashed")
    settings = server.world.settings
    assert not settings.synchronous_mode and settings.fixed_delta_seconds is None
    assert not server.tm.synchronous
    assert server.log[-1] == ("settings", False, None)


def test_ctrl_c_and_failed_ticks_restore_too():
    server = Server()
    with pytest.raises(KeyboardInterrupt):
        with CarlaSimulator(make_config(), client_factory=server.client) as sim:
            sim.reset(seed=0, route=TRIP)
            raise KeyboardInterrupt
    assert not server.world.settings.synchronous_mode
    server = Server()
    with pytest.raises(SimulatorError, match="tick"):
        with CarlaSimulator(make_config(), client_factory=server.client) as sim:
            sim.reset(seed=0, route=TRIP)
            server.world.fail_tick = True
            sim.step(VehicleControl())
    assert not server.world.settings.synchronous_mode and not server.world.actors


def test_cleanup_destroys_exactly_what_was_spawned_in_one_batch():
    server = Server()
    parked = server.world.add("vehicle.tesla.model3", carla.Transform(carla.Location(x=300.0)))  # not ours
    with CarlaSimulator(make_config(vehicles=4, pedestrians=3), client_factory=server.client) as sim:
        sim.reset(seed=1, route=TRIP)
        spawned = list(server.spawned)
        kinds = [server.world.actors[i].type_id for i in spawned]
        assert kinds.count("controller.ai.walker") == 3 and sum(k.startswith("walker") for k in kinds) == 3
        assert sum(k.startswith("vehicle") for k in kinds) == 5  # ego + 4
        assert all(server.world.actors[i].started for i in spawned if kinds[spawned.index(i)] == "controller.ai.walker")
    destroy_batches = [b for b in server.batches if b and isinstance(b[0], carla.command.DestroyActor)]
    assert len(destroy_batches) == 1
    assert sorted(c.actor_id for c in destroy_batches[0]) == sorted(spawned)
    assert list(server.world.actors) == [parked.id]
    autopilot = [c for b in server.batches for c in b if isinstance(c, carla.command.SetAutopilot)]
    assert len(autopilot) == 4 and all(c.enabled for c in autopilot)


def test_towns_are_loaded_once_and_keep_synchronous_mode():
    server = Server()
    with CarlaSimulator(make_config(), client_factory=server.client) as sim:
        assert server.loads == []  # Town01 is already loaded
        sim.reset(seed=0, route=RouteSpec(town="Town03", waypoints=TRIP.waypoints))
        sim.reset(seed=1, route=RouteSpec(town="Town03", waypoints=TRIP.waypoints))
        assert server.loads == ["Town03"] and server.world.settings.synchronous_mode
        sim.reset(seed=2, route=RouteSpec(town=5, waypoints=TRIP.waypoints))  # an embedded town seed: config town
        assert server.loads == ["Town03", "Town01"]
    assert not server.world.settings.synchronous_mode and not server.world.actors


def test_a_failed_reset_destroys_what_it_had_spawned(monkeypatch):
    server = Server()
    spawn = server.world.try_spawn_actor
    monkeypatch.setattr(
        server.world,
        "try_spawn_actor",
        lambda bp, tf, attach_to=None: None if "lane_invasion" in bp.id else spawn(bp, tf, attach_to),
    )
    with CarlaSimulator(make_config(), client_factory=server.client) as sim:
        with pytest.raises(SimulatorError, match="lane_invasion"):
            sim.reset(seed=0, route=TRIP)
        assert server.spawned and not server.world.actors  # ego and cameras were spawned, then destroyed


def test_reset_twice_replaces_the_episode():
    server = Server()
    with CarlaSimulator(make_config(vehicles=2), client_factory=server.client) as sim:
        sim.reset(seed=1, route=TRIP)
        first = set(server.world.actors)
        sim.reset(seed=2, route=TRIP)
        assert not first & set(server.world.actors)
    assert not server.world.actors


# ---------------------------------------------------------------------------------------------------
# Sensors: frame matching and decoding
# ---------------------------------------------------------------------------------------------------


class Datum:
    def __init__(self, frame: int):
        self.frame = frame


def test_sensor_data_is_matched_by_frame_not_arrival_order():
    sync = SensorSync(timeout_s=0.05)
    put = sync.callback("front/rgb")
    for frame in (12, 10, 11):  # out of order, with a stale frame
        put(Datum(frame))
    assert sync.get("front/rgb", 11).frame == 11  # 10 is dropped as stale, 12 kept
    assert sync.get("front/rgb", 12).frame == 12
    put(Datum(11))  # arrives late: stale for frame 13
    with pytest.raises(SimulatorError, match=r"sensor 'front/rgb' sent no data for frame 13"):
        sync.get("front/rgb", 13)


def test_sensor_timeout_names_the_missing_sensor():
    sync = SensorSync(timeout_s=0.05)
    sync.callback("front/rgb")(Datum(5))
    sync.callback("front/depth")
    start = time.monotonic()
    with pytest.raises(SimulatorError, match=r"'front/depth'.*frame 5"):
        sync.get_all(5)
    assert time.monotonic() - start < 1.0


def test_event_queue_hands_out_events_up_to_the_frame():
    events = EventQueue()
    for frame in (4, 6, 5):
        events(Datum(frame))
    assert [e.frame for e in events.pop(5)] == [4, 5]
    assert [e.frame for e in events.pop(6)] == [6]


def test_decoding_raw_bgra_buffers():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 999.0, size=(6, 8))
    depth[0, 0] = 1000.0
    raw = encode_depth(depth)
    np.testing.assert_allclose(decode_depth(raw), depth, atol=1e-3)
    assert decode_depth(raw).dtype == np.float32
    # a depth exactly on the encoding: R + G*256 + B*65536 = 1_000_000
    raw = np.array([[[0x0F, 0x42, 0x40, 255]]], dtype=np.uint8)  # B, G, R, A of 1_000_000
    assert decode_depth(raw)[0, 0] == pytest.approx(1000.0 * 1_000_000 / (256**3 - 1), rel=1e-6)
    bgra = np.array([[[10, 20, 30, 255], [1, 2, int(Tag.CAR), 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_rgb(bgra), [[[30, 20, 10], [int(Tag.CAR), 2, 1]]])
    np.testing.assert_array_equal(decode_semantic(bgra), [[30, int(Tag.CAR)]])
    inst = np.array([[[0x03, 0xE9, int(Tag.CAR), 255]]], dtype=np.uint8)  # actor 1001 = 0x03E9: G = 0xE9, B = 0x03
    assert decode_instance(inst)[0, 0] == 1001


# ---------------------------------------------------------------------------------------------------
# Ground-truth boxes
# ---------------------------------------------------------------------------------------------------

W, H, FOV = 320, 160, 90.0
CAMERA = Pose(1.3, 0.0, 1.6).matrix()  # ego at the origin facing +x, default mount
K = intrinsics(W, H, FOV)
CAR_BOX = carla.BoundingBox(carla.Location(z=0.75), carla.Vector3D(2.0, 1.0, 0.75))


def car_ahead(distance: float = 20.0) -> np.ndarray:
    return corners_of(CAR_BOX, carla.Transform(carla.Location(x=1.3 + distance)))


def test_known_actor_ahead_lands_at_the_expected_pixels():
    corners = car_ahead()
    # f = W / (2 tan 45 deg) = 160, principal point (160, 80); near face 18 m, far face 22 m away,
    # 1 m either side, from 0.1 m above to 1.6 m below the camera.
    f, cx, cy = 160.0, 160.0, 80.0
    expected = (
        math.floor(cx - f * 1.0 / 18.0),
        math.floor(cy + f * (1.6 - 1.5) / 22.0),
        math.ceil(cx + f * 1.0 / 18.0),
        math.ceil(cy + f * 1.6 / 18.0),
    )
    assert expected == (151, 80, 169, 95)
    assert project_box(corners, CAMERA, K, W, H) == expected
    uv, depth = project(corners, CAMERA, K)  # the same formula, corner by corner
    assert depth.min() == pytest.approx(18.0) and depth.max() == pytest.approx(22.0)
    assert (math.floor(uv[:, 0].min()), math.ceil(uv[:, 0].max())) == (expected[0], expected[2])


def test_occluded_actor_is_filtered_and_partial_occlusion_is_measured():
    corners = car_ahead()
    obj = BoxObject(5, ActorKind.VEHICLE, int(Tag.CAR), corners)
    sky = np.full((H, W), 1000.0, dtype=np.float32)
    (box,) = visible_boxes([obj], CAMERA, K, sky, min_pixels=12)
    assert box.as_list() == [151, 80, 169, 95] and box.visibility == 1.0 and box.actor_id == 5
    wall = np.full((H, W), 10.0, dtype=np.float32)  # a wall 10 m ahead hides the car 18 m ahead
    assert visibility(corners, CAMERA, K, wall) == 0.0
    assert visible_boxes([obj], CAMERA, K, wall, min_pixels=12) == []
    half = sky.copy()
    half[:, :160] = 10.0  # the wall hides the left half of the image
    assert visibility(corners, CAMERA, K, half) == pytest.approx(0.5, abs=0.1)


def test_boxes_clip_to_the_image_and_behind_the_camera():
    beside = corners_of(CAR_BOX, carla.Transform(carla.Location(x=1.3 + 1.0, y=-3.0)))  # partly behind the camera
    box = project_box(beside, CAMERA, K, W, H)
    assert box is not None and box[0] == 0 and 0 < box[2] < W
    behind = corners_of(CAR_BOX, carla.Transform(carla.Location(x=-10.0)))
    assert project_box(behind, CAMERA, K, W, H) is None


# ---------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------


def test_collisions_count_once_like_the_leaderboard():
    f = CollisionFilter()
    hit = f.update([(7, "vehicle.tesla.model3"), (7, "vehicle.tesla.model3")], 1.0, 0.0, 0.0, 3.0)
    assert [(c.kind, c.actor_id) for c in hit] == [(ActorKind.VEHICLE, 7)]
    assert f.update([(8, "walker.pedestrian.0001")], 1.5, 2.0, 0.0, 3.0) == []  # within 5 m of the last one
    assert f.update([(9, "static.prop.bin")], 3.0, 20.0, 0.0, 0.05) == []  # ego standing
    assert f.update([(9, "static.prop.bin")], 3.0, 20.0, 0.0, 3.0)[0].kind == ActorKind.STATIC
    assert f.update([(12, "walker.pedestrian.0001")], 4.0, 40.0, 0.0, 3.0)[0].kind == ActorKind.PEDESTRIAN


def test_red_light_is_run_when_the_tail_crosses_the_stop_line():
    light = LightStops(1, (85.0, 0.0), [StopLine(90.0, 0.0, 0.0, 3.5, 7, -1)])
    monitor = RedLightMonitor([light])
    lane = lambda x, y: (7, -1)
    red = {1: TrafficLightState.RED}
    assert monitor.update(red, 89.0, 0.0, 0.0, 2.4, lane) is None  # nose past, tail not yet
    assert monitor.update({1: TrafficLightState.GREEN}, 92.5, 0.0, 0.0, 2.4, lane) is None
    monitor = RedLightMonitor([light])
    assert monitor.update(red, 92.5, 0.0, 0.0, 2.4, lambda x, y: (7, 1)) is None  # other lane
    assert monitor.update(red, 92.5, 0.0, 180.0, 2.4, lane) is None  # driving the other way
    assert monitor.update(red, 92.5, 0.0, 0.0, 2.4, lane) == 1
    assert monitor.update(red, 92.6, 0.0, 0.0, 2.4, lane) is None  # counted once
    assert segments_intersect((0, 0), (2, 0), (1, -1), (1, 1)) and not segments_intersect(
        (0, 0), (2, 0), (3, -1), (3, 1)
    )


def test_route_tracker_blocked_and_opposite_lane():
    route = resample(np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([4, 4]))
    tracker = RouteTracker(route, deviation_m=30.0)
    assert tracker.update(10.0, 1.0) == (False, False) and tracker.progress == pytest.approx(10.0)
    assert tracker.update(5.0, 0.0) == (False, False) and tracker.progress == pytest.approx(10.0)  # never back
    assert tracker.update(30.0, 35.0) == (True, False)
    for x in range(30, 100, 10):
        tracker.update(float(x), 0.0)
    assert tracker.update(99.5, 0.0) == (False, True)
    blocked = BlockedMonitor(limit_s=1.0)
    assert not any(blocked.update(0.0, 0.25) for _ in range(4)) and blocked.update(0.05, 0.25)
    lanes = OppositeLaneMonitor()
    assert not lanes.update(False, (1, 0, -1), False)
    assert not lanes.update(True, (1, 0, -1), False)  # marking crossed, still in our lane
    assert lanes.update(False, (1, 0, 1), True)  # now in the opposite lane
    assert not lanes.update(False, (1, 0, 1), True)


# ---------------------------------------------------------------------------------------------------
# Episodes on the stand-in server
# ---------------------------------------------------------------------------------------------------


def drive_to(sim: CarlaSimulator, ego: Actor, x: float, y: float = 0.0):
    """Move the stand-in ego in 2 m steps to (x, y), stepping the simulator without rendering."""
    start = ego.transform.location
    n = max(int(math.hypot(x - start.x, y - start.y) / 2.0), 1)
    for k in range(1, n + 1):
        ego.transform = carla.Transform(
            carla.Location(x=start.x + (x - start.x) * k / n, y=start.y + (y - start.y) * k / n)
        )
        obs = sim.step(VehicleControl(), render=False)
    return obs


def test_episode_observations():
    server = Server()
    parked = server.world.add("vehicle.tesla.model3", carla.Transform(carla.Location(x=10.0 + 1.3 + 20.0)))
    with CarlaSimulator(make_config(), client_factory=server.client) as sim:
        obs = sim.reset(seed=0, route=TRIP)
        assert obs.time == 0.0 and obs.route_length == pytest.approx(190.0)
        ego = server.world.actors[server.spawned[0]]
        assert ego.type_id == "vehicle.lincoln.mkz_2020" and ego.attributes["role_name"] == "hero"
        cam = obs.cameras["front"]
        assert cam.rgb.shape == (160, 320, 3) and cam.rgb[0, 0, 0] == obs.frame % 256  # this tick's image
        assert (cam.semantic == Tag.ROADS).all() and cam.depth.max() == pytest.approx(1000.0)
        np.testing.assert_allclose(cam.camera_to_world, Pose(11.3, 0.0, 2.1).matrix(), atol=1e-5)
        (box,) = cam.boxes
        assert box.actor_id == parked.id and box.kind == ActorKind.VEHICLE and box.tag == Tag.CAR
        assert tuple(box.as_list()) == project_box(
            corners_of(parked.bounding_box, parked.transform), cam.camera_to_world, cam.K, 320, 160
        )
        assert [a.id for a in obs.actors] == [parked.id]
        assert obs.route.shape == (50, 2) and obs.command == RoadOption.LANEFOLLOW
        np.testing.assert_allclose(obs.route[:, 0], np.arange(50.0), atol=1e-6)
        np.testing.assert_allclose(obs.target_point, [51.0, 0.0], atol=1e-4)  # the sparse plan's first point past 7.5 m
        assert obs.speed_limit == pytest.approx(8.33)  # the config's limit is below the map's 30 km/h
        assert obs.traffic_light.state == TrafficLightState.GREEN and obs.traffic_light.distance == math.inf

        ego.velocity = carla.Vector3D(x=5.0)
        ego.speed_limit = 20.0
        obs = sim.step(VehicleControl(throttle=0.7, steer=-0.2), render=False)
        assert (
            obs.speed_limit == pytest.approx(20.0 / 3.6)
            and obs.cameras == {}
            and obs.time == pytest.approx(0.05)
            and obs.ego.speed == pytest.approx(5.0)
        )
        control = ego.controls[-1]
        assert control.throttle == pytest.approx(0.7) and control.steer == pytest.approx(-0.2)
        obs = sim.step(VehicleControl())  # stale images of skipped frames are dropped
        assert obs.cameras["front"].rgb[0, 0, 0] == obs.frame % 256
        obs = sim.step(VehicleControl(), render=RGB_ONLY)  # what `drive` renders for the learned agent
        cam = obs.cameras["front"]
        assert cam.rgb[0, 0, 0] == obs.frame % 256 and cam.semantic is None and cam.depth is None and cam.instance is None
        assert cam.boxes == [] and np.allclose(cam.camera_to_world, Pose(11.3, 0.0, 2.1).matrix(), atol=1e-5)
        obs = sim.step(VehicleControl())  # and a full render after it has this frame's images and truth again
        assert obs.cameras["front"].rgb[0, 0, 0] == obs.frame % 256 and (obs.cameras["front"].semantic == Tag.ROADS).all()
        with pytest.raises(ValueError, match="render must be"):
            sim.step(VehicleControl(), render="depth")

        server.world.collisions = [parked]
        obs = sim.step(VehicleControl())
        assert [(c.kind, c.actor_id) for c in obs.events.collisions] == [(ActorKind.VEHICLE, parked.id)]
        assert not obs.events.off_road and not obs.done

        obs = drive_to(sim, ego, 60.0, y=8.0)
        assert obs.events.off_road and not obs.events.route_deviation
        assert obs.route_progress == pytest.approx(50.0)
        obs = drive_to(sim, ego, 200.0)
        assert obs.events.route_completed and obs.done


def test_traffic_light_distance_and_red_light_running():
    server = Server()
    light = server.world.add("traffic.traffic_light", carla.Transform(carla.Location(x=100.0)))
    with CarlaSimulator(make_config(), client_factory=server.client) as sim:
        obs = sim.reset(seed=0, route=TRIP)
        ego = server.world.actors[server.spawned[0]]
        ego.velocity = carla.Vector3D(x=5.0)
        drive_to(sim, ego, 80.0)
        ego.light = light
        obs = sim.step(VehicleControl())
        assert obs.traffic_light.state == TrafficLightState.RED and obs.traffic_light.actor_id == light.id
        assert obs.traffic_light.distance == pytest.approx(10.0, abs=0.01)  # stop line at x = 90
        assert not obs.events.red_light
        ego.transform = carla.Transform(carla.Location(x=92.5))
        assert sim.step(VehicleControl()).events.red_light
        assert not sim.step(VehicleControl()).events.red_light


def test_random_route_from_the_seed():
    server = Server()
    with CarlaSimulator(make_config(), client_factory=server.client) as sim:
        a = sim.reset(seed=3, route=RouteSpec(length=120.0))
        start_a = server.world.actors[server.spawned[0]].transform.location.x
        first = len(server.spawned)
        b = sim.reset(seed=3, route=RouteSpec(length=120.0))
        start_b = server.world.actors[server.spawned[first]].transform.location.x  # the second ego
        assert a.route_length == pytest.approx(b.route_length) and start_a == start_b
        assert 100.0 <= a.route_length <= 120.0
