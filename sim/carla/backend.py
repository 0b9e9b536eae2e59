"""The CARLA backend of the simulator interface (``sim.backend: carla``), for CARLA servers 0.9.14 to 0.9.16.

Connects to a running server, runs it in synchronous mode at the config's fixed step with the Traffic
Manager in synchronous mode, and gives back the server's previous settings on close (also after an
exception or Ctrl-C when used as a context manager). Use::

    with CarlaSimulator(config) as sim:
        obs = sim.reset(seed=0, route=RouteSpec(town="Town03"))
        while not obs.done:
            obs = sim.step(agent(obs))
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import carla
import numpy as np
from drivestack.common.errors import InputError
from drivestack.sim.camera import intrinsics
from drivestack.sim.carla.actors import (
    SpawnRecord,
    destroy_all,
    spawn_ego,
    spawn_sensor,
    spawn_vehicles,
    spawn_walkers,
    start_walkers,
)
from drivestack.sim.carla.boxes import BoxObject, corners_of, visible_boxes
from drivestack.sim.carla.events import (
    BlockedMonitor,
    CollisionFilter,
    LightStops,
    OppositeLaneMonitor,
    RedLightMonitor,
    RouteTracker,
    StopLine,
)
from drivestack.sim.carla.routing import Route, RoutePlanner, topology_segments
from drivestack.sim.carla.sensors import (
    CAMERA_BLUEPRINTS,
    EventQueue,
    SensorSync,
    bgra,
    camera_attributes,
    camera_transform,
    decode_depth,
    decode_instance,
    decode_rgb,
    decode_semantic,
    pose_of,
)
from drivestack.sim.conventions import VEHICLE_TAGS, ActorKind, Tag, TrafficLightState
from drivestack.sim.interface import (
    RGB_ONLY,
    ActorState,
    CameraFrame,
    EgoState,
    Events,
    Observation,
    RouteSpec,
    Simulator,
    SimulatorError,
    TrafficLightInfo,
    VehicleControl,
)
from drivestack.sim.route_plan import plan_indices, target_point
from drivestack.sim.settings import SimConfig

log = logging.getLogger(__name__)

MIN_SERVER = (0, 9, 14)  # older servers number semantic tags differently
INSTANCE_IDS_FROM = (0, 9, 16)  # the instance camera encodes actor ids from this version on
ACTOR_RANGE_M = 60.0  # privileged actor list radius
BOX_RANGE_M = 100.0  # objects farther from the ego get no 2D box
ROUTE_POINTS = 50  # points of Observation.route, 1 m apart
RANDOM_ROUTE_TRIES = 10  # spawn points tried for a random route of the asked length
SPAWN_LIFT_M = 0.5  # the ego spawns this far above a lane point


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(0, 9, 16) from '0.9.16' or '0.9.15-dirty'; None if there is no version number."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def weather_preset(name: str) -> carla.WeatherParameters:
    """A carla.WeatherParameters preset by name (ClearNoon, WetCloudySunset, ...)."""
    presets = [
        n
        for n in dir(carla.WeatherParameters)
        if isinstance(getattr(carla.WeatherParameters, n), carla.WeatherParameters)
    ]
    if name not in presets:
        raise InputError(f"sim.carla.weather: unknown CARLA weather preset '{name}' (valid: {', '.join(sorted(presets))})")
    return getattr(carla.WeatherParameters, name)


def vehicle_tag(actor: Any) -> Tag:
    """The vehicle's semantic tag (Car, Truck, Bus, Motorcycle, Bicycle) from its semantic_tags."""
    tags = [Tag(t) for t in getattr(actor, "semantic_tags", []) if t in VEHICLE_TAGS]
    return tags[0] if tags else Tag.CAR


class ServerUnreachable(SimulatorError, InputError):
    """No CARLA server at the configured address: a setting or a server to start, told in one line."""


_VERSION_PROBE = "import sys, carla; c = carla.Client(sys.argv[1], int(sys.argv[2])); c.set_timeout(float(sys.argv[3])); print(c.get_server_version())"


def _start_hint(port: int) -> str:
    return f"start one with './CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}' or set sim.carla.host/port"


def probe_server(host: str, port: int, timeout_s: float) -> str:
    """The version of the CARLA server at ``host:port``, asked from a child process: the client aborts its
    process (SIGABRT) on an endpoint that accepts the connection but does not speak CARLA's RPC, so that
    abort must not happen here. :class:`ServerUnreachable` when no CARLA server answers."""
    start = _start_hint(port)
    try:
        probe = subprocess.run([sys.executable, "-c", _VERSION_PROBE, host, str(port), str(timeout_s)], capture_output=True,
                               text=True, timeout=timeout_s + 30)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ServerUnreachable(f"{host}:{port} did not answer CARLA's version request within {timeout_s} s; {start}") from None
    if probe.returncode < 0:
        raise ServerUnreachable(f"{host}:{port} accepts connections but is not a CARLA server (its reply aborted the client); {start}")
    if probe.returncode != 0:
        raise ServerUnreachable(f"no CARLA server at {host}:{port} answered within {timeout_s} s; {start}")
    return probe.stdout.strip()


class CarlaSimulator(Simulator):
    """A CARLA server behind the :class:`~sim.interface.Simulator` interface."""

    def __init__(self, config: SimConfig, client_factory: Callable[[str, int], Any] = carla.Client):
        self.config = config
        self.dt = config.dt
        cc = config.carla
        weather_preset(cc.weather)
        if client_factory is carla.Client:  # a real client; tests pass fakes
            probe_server(cc.host, cc.port, cc.timeout_s)
        self._client = client_factory(cc.host, cc.port)
        self._client.set_timeout(cc.timeout_s)
        try:
            self._world = self._client.get_world()
        except RuntimeError as e:
            raise ServerUnreachable(
                f"no CARLA server at {cc.host}:{cc.port} answered within {cc.timeout_s} s ({e}); {_start_hint(cc.port)}"
            ) from e
        self._server_version = self._check_version()
        self._original_settings = self._world.get_settings()
        self._record = SpawnRecord()
        self._tm: Any = None
        self._closed = False
        self._ego: Any = None
        self._planner: RoutePlanner | None = None
        try:
            self._apply_sync()
            self._tm = self._client.get_trafficmanager(cc.traffic_manager_port)
            self._tm.set_synchronous_mode(True)
            self._map = self._world.get_map()
            self._town = _map_name(self._map.name)
            self._load_town(cc.town)
        except BaseException:
            self.close()
            raise

    # -- server set-up and teardown ------------------------------------------------------------------

    def _check_version(self) -> tuple[int, int, int] | None:
        server = self._client.get_server_version()
        version = parse_version(server)
        if version is None:
            log.warning("cannot read the CARLA server version '%s'; assuming 0.9.14 or later", server)
        elif version < MIN_SERVER:
            raise SimulatorError(
                f"CARLA server {server} is too old: 0.9.14 to 0.9.16 are supported (semantic tags changed in 0.9.14)"
            )
        client = parse_version(self._client.get_client_version())
        if version and client and version != client:
            log.warning(
                "CARLA server %s with client %s: differences may break things", server, ".".join(map(str, client))
            )
        return version

    def _apply_sync(self) -> None:
        settings = self._world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.dt
        self._world.apply_settings(settings)

    def _load_town(self, town: str) -> None:
        """Load ``town`` unless it is the current map; build its route planner and traffic light data once."""
        if _map_name(town) != self._town:
            log.info("loading %s", town)
            try:
                self._world = self._client.load_world(town)
            except RuntimeError as e:
                raise SimulatorError(f"could not load CARLA map '{town}': {e}") from e
            self._apply_sync()
            self._tick()
            self._map = self._world.get_map()
            self._town = _map_name(town)  # the name asked for: a loaded map may report another (_Opt)
            self._planner = None
        if self._planner is None:
            self._planner = RoutePlanner(topology_segments(self._map))
            self._lights = list(self._world.get_actors().filter("traffic.traffic_light*"))
            self._light_corners = {
                light.id: [corners_of(box, carla.Transform()) for box in light.get_light_boxes()]
                for light in self._lights
            }
            self._light_stops = {light.id: _light_stops(light) for light in self._lights}

    def close(self) -> None:
        """Destroy what this simulator spawned and give the server back its previous settings."""
        if self._closed:
            return
        self._closed = True
        steps = [("destroy the episode's actors", self._end_episode)]
        if self._tm is not None:
            steps.append(("stop the Traffic Manager's synchronous mode", lambda: self._tm.set_synchronous_mode(False)))
        steps.append(("restore the server's settings", lambda: self._world.apply_settings(self._original_settings)))
        for what, step in steps:
            try:
                step()
            except RuntimeError as e:
                log.warning("could not %s: %s", what, e)

    def _end_episode(self) -> None:
        self._ego = None
        destroy_all(self._client, self._record)

    # -- episodes ------------------------------------------------------------------------------------

    def reset(self, seed: int, route: RouteSpec | None = None) -> Observation:
        if self._closed:
            raise SimulatorError("this CarlaSimulator is closed")
        route = route or RouteSpec(length=self.config.route_length)
        self._end_episode()
        self._load_town(route.town if isinstance(route.town, str) and route.town else self.config.carla.town)
        try:
            return self._start_episode(seed, route)
        except BaseException:
            self._end_episode()
            raise

    def _start_episode(self, seed: int, spec: RouteSpec) -> Observation:
        cfg = self.config
        rng = np.random.default_rng(seed)
        self._tm.set_random_device_seed(seed)
        self._world.set_pedestrians_seed(seed)
        self._world.set_weather(weather_preset(cfg.carla.weather))
        route, start = self._plan(spec, rng)
        self._ego = spawn_ego(self._world, cfg.carla.ego_blueprint, start, self._record)
        self._sync = SensorSync(cfg.carla.sensor_timeout_s)
        self._instance = self._server_version is not None and self._server_version >= INSTANCE_IDS_FROM
        kinds = ["rgb", "semantic", "depth"] + (["instance"] if self._instance else [])
        for cam in cfg.cameras:
            for kind in kinds:
                spawn_sensor(
                    self._world, CAMERA_BLUEPRINTS[kind], camera_attributes(cam), camera_transform(cam),
                    self._ego, self._sync.callback(f"{cam.name}/{kind}"), self._record,
                )  # fmt: skip
        self._collision_events, self._lane_events = EventQueue(), EventQueue()
        spawn_sensor(
            self._world,
            "sensor.other.collision",
            {},
            carla.Transform(),
            self._ego,
            self._collision_events,
            self._record,
        )
        spawn_sensor(
            self._world, "sensor.other.lane_invasion", {}, carla.Transform(), self._ego, self._lane_events, self._record
        )
        spawn_points = self._map.get_spawn_points()
        vehicles = spawn_vehicles(
            self._client, self._world, cfg.traffic.vehicles, spawn_points, start.location,
            cfg.carla.traffic_manager_port, rng, self._record,
        )  # fmt: skip
        walkers = spawn_walkers(self._world, cfg.traffic.pedestrians, rng, self._record)
        frame = self._tick()  # walker controllers start after one tick
        start_walkers(self._world, walkers)
        self._sync.discard(frame)  # a sensor may miss its very first tick: observe the next one
        frame = self._tick()
        others = [a for a in self._world.get_actors().filter("vehicle.*") if a.id != self._ego.id]
        self._movers = [(a, ActorKind.VEHICLE, vehicle_tag(a)) for a in others] + [
            (a, ActorKind.PEDESTRIAN, Tag.PEDESTRIANS) for a in self._world.get_actors().filter("walker.pedestrian.*")
        ]
        log.info("episode: %d vehicles, %d walkers, route %.0f m", len(vehicles), len(walkers), route.length)
        self._tracker = RouteTracker(route, cfg.route_deviation_m)
        self._route_plan = plan_indices(route.options, route.s)
        self._blocked = BlockedMonitor(cfg.blocked_s)
        self._collisions = CollisionFilter()
        self._red_lights = RedLightMonitor(list(self._light_stops.values()))
        self._opposite = OppositeLaneMonitor()
        self._frame0 = frame
        return self._observe(frame, render=True)

    def _plan(self, spec: RouteSpec, rng: np.random.Generator) -> tuple[Route, carla.Transform]:
        """The episode's route and the ego's start transform."""
        if spec.waypoints:
            try:
                route = self._planner.plan(list(spec.waypoints))
            except ValueError as e:
                raise SimulatorError(f"route '{spec.name}': {e}") from e
            x, y = route.points[0]
            start = self._map.get_waypoint(carla.Location(x=float(x), y=float(y), z=0.0)).transform
            start = carla.Transform(
                carla.Location(x=start.location.x, y=start.location.y, z=start.location.z + SPAWN_LIFT_M),
                carla.Rotation(yaw=start.rotation.yaw),
            )
            return route, start
        spawn_points = self._map.get_spawn_points()
        if not spawn_points:
            raise SimulatorError("this CARLA map has no spawn points for a random route")
        best: tuple[Route, carla.Transform] | None = None
        for k in rng.permutation(len(spawn_points))[:RANDOM_ROUTE_TRIES]:
            start = spawn_points[int(k)]
            route = self._planner.random_route((start.location.x, start.location.y), spec.length, rng)
            if best is None or route.length > best[0].length:
                best = (route, start)
            if route.length >= 0.9 * spec.length:
                break
        return best

    def step(self, control: VehicleControl, render: bool | str = True) -> Observation:
        if self._ego is None:
            raise SimulatorError("call reset() before step()")
        if render not in (True, False, RGB_ONLY):
            raise ValueError(f"render must be True, False or {RGB_ONLY!r}, got {render!r}")
        self._ego.apply_control(
            carla.VehicleControl(
                throttle=control.throttle,
                steer=control.steer,
                brake=control.brake,
                hand_brake=control.hand_brake,
                reverse=control.reverse,
            )
        )
        return self._observe(self._tick(), render)

    def _tick(self) -> int:
        try:
            return self._world.tick(self.config.carla.timeout_s)
        except RuntimeError as e:
            raise SimulatorError(f"world.tick() failed (server gone or too slow?): {e}") from e

    # -- observations --------------------------------------------------------------------------------

    def _observe(self, frame: int, render: bool | str) -> Observation:
        transform = self._ego.get_transform()
        pose = pose_of(transform)
        forward = transform.get_forward_vector()
        speed = self._ego.get_velocity().dot(forward)
        extent = self._ego.bounding_box.extent
        ego = EgoState(pose, speed, self._ego.get_acceleration().dot(forward), (extent.x, extent.y, extent.z))
        if render:
            cameras = self._cameras(frame, transform.location, truth=render is True)
        else:
            self._sync.discard(frame)
            cameras = {}
        time = (frame - self._frame0) * self.dt
        events = self._events(frame, time, transform, speed)
        route, progress = self._tracker.route, self._tracker.progress
        lane_limit = self._ego.get_speed_limit() / 3.6  # km/h on the map, 0 where none applies
        speed_limit = min(self.config.speed_limit, lane_limit) if lane_limit > 0 else self.config.speed_limit
        return Observation(
            frame=frame,
            time=time,
            cameras=cameras,
            ego=ego,
            route=route.ahead(progress, pose.x, pose.y, pose.yaw, ROUTE_POINTS),
            command=route.option_at(progress),
            target_point=target_point(route.points, route.s, self._route_plan, progress, pose.x, pose.y, pose.yaw),
            traffic_light=self._traffic_light(pose.x, pose.y),
            events=events,
            route_progress=progress,
            route_length=route.length,
            actors=self._actors(transform.location),
            speed_limit=speed_limit,
        )

    def _cameras(self, frame: int, ego_location: carla.Location, truth: bool) -> dict[str, CameraFrame]:
        """Each camera's images for ``frame``. Without ``truth`` (``render=RGB_ONLY``) the RGB image alone: the truth
        images are dropped undecoded and no boxes are projected (the server still renders them)."""
        if not truth:
            data = self._sync.get_all(frame, [f"{cam.name}/rgb" for cam in self.config.cameras])
            self._sync.discard(frame)
        else:
            data = self._sync.get_all(frame)
            objects = self._box_objects(ego_location)
        frames = {}
        for cam in self.config.cameras:
            image = data[f"{cam.name}/rgb"]
            c2w = pose_of(image.transform).matrix()
            K = intrinsics(cam.width, cam.height, cam.fov)
            if not truth:
                frames[cam.name] = CameraFrame(name=cam.name, rgb=decode_rgb(bgra(image)), semantic=None, depth=None, instance=None,
                                               K=K, camera_to_world=c2w, boxes=[])  # fmt: skip
                continue
            depth = decode_depth(bgra(data[f"{cam.name}/depth"]))
            if self._instance:
                instance = decode_instance(bgra(data[f"{cam.name}/instance"]))
            else:
                instance = np.zeros((cam.height, cam.width), dtype=np.uint16)
            frames[cam.name] = CameraFrame(
                name=cam.name,
                rgb=decode_rgb(bgra(image)),
                semantic=decode_semantic(bgra(data[f"{cam.name}/semantic"])),
                depth=depth,
                instance=instance,
                K=K,
                camera_to_world=c2w,
                boxes=visible_boxes(objects, c2w, K, depth, self.config.min_box_pixels),
            )
        return frames

    def _box_objects(self, ego_location: carla.Location) -> list[BoxObject]:
        objects = []
        for actor, kind, tag in self._movers:
            transform = actor.get_transform()
            if transform.location.distance(ego_location) <= BOX_RANGE_M:
                objects.append(BoxObject(actor.id, kind, int(tag), corners_of(actor.bounding_box, transform)))
        for light in self._lights:
            if light.get_transform().location.distance(ego_location) > BOX_RANGE_M:
                continue
            state = TrafficLightState(int(light.get_state()))
            for corners in self._light_corners[light.id]:
                objects.append(BoxObject(light.id, ActorKind.TRAFFIC_LIGHT, int(Tag.TRAFFIC_LIGHT), corners, state))
        return objects

    def _actors(self, ego_location: carla.Location) -> list[ActorState]:
        states = []
        for actor, kind, _ in self._movers:
            transform = actor.get_transform()
            if transform.location.distance(ego_location) > ACTOR_RANGE_M:
                continue
            e, v = actor.bounding_box.extent, actor.get_velocity()
            states.append(ActorState(actor.id, kind, pose_of(transform), (e.x, e.y, e.z), (v.x, v.y)))
        return states

    def _traffic_light(self, x: float, y: float) -> TrafficLightInfo:
        """The light CARLA says governs the ego and the distance along the route to its stop line."""
        light = self._ego.get_traffic_light()
        if light is None:
            return TrafficLightInfo()
        state = TrafficLightState(int(self._ego.get_traffic_light_state()))
        stops = self._light_stops[light.id].stops if light.id in self._light_stops else []
        if not stops:
            return TrafficLightInfo(state, math.inf, light.id)
        route, progress = self._tracker.route, self._tracker.progress
        lo = int(np.searchsorted(route.s, progress)) - 2
        along = []
        for stop in stops:
            s, d = route.locate(stop.x, stop.y, lo, lo + int(2 * ACTOR_RANGE_M))
            if d < stop.lane_width:
                along.append(max(s - progress, 0.0))
        distance = min(along) if along else min(math.dist((x, y), (stop.x, stop.y)) for stop in stops)
        return TrafficLightInfo(state, distance, light.id)

    def _events(self, frame: int, time: float, transform: carla.Transform, speed: float) -> Events:
        loc, yaw = transform.location, transform.rotation.yaw
        partners = [
            (e.other_actor.id, e.other_actor.type_id) if e.other_actor else (0, "static")
            for e in self._collision_events.pop(frame)
        ]
        crossed = bool(self._lane_events.pop(frame))
        waypoint = self._map.get_waypoint(loc, project_to_road=False, lane_type=carla.LaneType.Driving)
        lane, opposite = None, False
        if waypoint is not None and not waypoint.is_junction:
            lane = (waypoint.road_id, waypoint.section_id, waypoint.lane_id)
            opposite = waypoint.transform.get_forward_vector().dot(transform.get_forward_vector()) < 0
        corners = self._ego.bounding_box.get_world_vertices(transform)
        off_road = any(
            self._map.get_waypoint(corners[i], project_to_road=False, lane_type=carla.LaneType.Driving) is None
            for i in (0, 2, 4, 6)  # bottom corners
        )
        states = {light.id: TrafficLightState(int(light.get_state())) for light in self._lights}
        red = self._red_lights.update(states, loc.x, loc.y, yaw, self._ego.bounding_box.extent.x, self._lane_at(loc.z))
        deviated, completed = self._tracker.update(loc.x, loc.y)
        return Events(
            collisions=self._collisions.update(partners, time, loc.x, loc.y, speed),
            red_light=red is not None,
            off_road=off_road,
            lane_invasion=self._opposite.update(crossed, lane, opposite),
            route_deviation=deviated,
            blocked=self._blocked.update(speed, self.dt),
            route_completed=completed,
        )

    def _lane_at(self, z: float) -> Callable[[float, float], tuple[int, int] | None]:
        def lane_at(x: float, y: float) -> tuple[int, int] | None:
            waypoint = self._map.get_waypoint(carla.Location(x=x, y=y, z=z))
            return None if waypoint is None else (waypoint.road_id, waypoint.lane_id)

        return lane_at


def _map_name(name: str) -> str:
    """'Town03' from 'Carla/Maps/Town03', '/Game/Carla/Maps/Town03' or 'Town03'."""
    return name.rstrip("/").split("/")[-1]


def _light_stops(light: Any) -> LightStops:
    """A traffic light's trigger-area centre and stop lines, as plain data."""
    center = light.get_transform().transform(light.trigger_volume.location)
    stops = [
        StopLine(
            w.transform.location.x, w.transform.location.y, w.transform.rotation.yaw, w.lane_width, w.road_id, w.lane_id
        )
        for w in light.get_stop_waypoints()
    ]
    return LightStops(light.id, (center.x, center.y), stops)
