"""The embedded simulator: procedural towns, traffic, a bicycle-model ego and a headless renderer behind
the :class:`~sim.interface.Simulator` interface. Needs no server and no GPU; deterministic from seeds."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np
from drivestack.sim.camera import Pose, intrinsics
from drivestack.sim.conventions import ActorKind, RoadOption, Tag, TrafficLightState
from drivestack.sim.embedded.events import EventMonitor
from drivestack.sim.embedded.render import BoxInstances, Lighting, Renderer
from drivestack.sim.embedded.route import Route, random_route, route_through
from drivestack.sim.embedded.town import Town, get_town
from drivestack.sim.embedded.town_scene import TownScene
from drivestack.sim.embedded.traffic import Traffic
from drivestack.sim.embedded.vehicle import BicycleState, VehicleParams, step_bicycle
from drivestack.sim.embedded.visible_boxes import visible_boxes
from drivestack.sim.geometry import resample, to_local
from drivestack.sim.interface import (
    RGB_ONLY,
    ActorState,
    CameraFrame,
    EgoState,
    Observation,
    RouteSpec,
    Simulator,
    TrafficLightInfo,
    VehicleControl,
)
from drivestack.sim.route_plan import plan_indices, target_point
from drivestack.sim.settings import SimConfig
from drivestack.sim.visualize import annotate_map

EGO_ID = 1
ROUTE_POINTS = 50
ACTOR_RADIUS_M = 60.0
LIGHT_RANGE_M = 60.0
LAMP_VIEW_COS = math.cos(math.radians(60))  # lamps show their state within 60 degrees of their axis
EGO_PREDICTION_S = (0.5, 1.0, 1.5)  # seconds ahead at which NPC vehicles see where the ego will be


@lru_cache(maxsize=4)
def _scene(town: Town, wear: tuple[float, float]) -> TownScene:
    return TownScene(town, wear)


class EmbeddedSimulator(Simulator):
    """Simulator with no server: see the module docstring."""

    def __init__(self, config: SimConfig):
        if config.backend != "embedded":
            raise ValueError(f"EmbeddedSimulator needs sim.backend=embedded, got {config.backend!r}")
        self.config = config
        self.dt = config.dt
        self.params = VehicleParams()
        self._renderer: Renderer | None = None
        self._scene: TownScene | None = None
        self.town: Town | None = None
        self.timings_ms = {"step": 0.0, "render": 0.0}  # the last step's: rendering the cameras (with their boxes), the rest

    # -- episode ----------------------------------------------------------------------------------
    def reset(self, seed: int, route: RouteSpec | None = None) -> Observation:
        route = route or RouteSpec(town=self.config.town.seed, length=self.config.route_length)
        if not isinstance(route.town, int):
            raise ValueError(f"the embedded simulator's towns are integer seeds, got town={route.town!r}")
        town_cfg = replace(self.config.town, seed=route.town)
        self.town = get_town(town_cfg, self.config.traffic)
        scene = _scene(self.town, tuple(self.config.appearance.road_wear))
        if self._renderer is None:
            self._renderer = Renderer(self.config.cameras, scene.ground)
        elif scene is not self._scene:
            self._renderer.set_ground(scene.ground)
        self._scene = scene
        route_rng, traffic_rng, look_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, route.town]).spawn(3))
        self.route: Route = route_through(self.town, route.waypoints) if route.waypoints else random_route(self.town, route_rng, route.length)
        self._route_s = np.arange(len(self.route.points), dtype=np.float64)  # points are 1 m apart
        self.route_plan = plan_indices(self.route.commands, self._route_s)
        p0, p1 = self.route.points[0], self.route.points[min(3, len(self.route.points) - 1)]
        self.ego = BicycleState(x=float(p0[0]), y=float(p0[1]), yaw=math.atan2(p1[1] - p0[1], p1[0] - p0[0]))
        t = self.config.traffic
        self.traffic = Traffic(self.town, traffic_rng, t.vehicles, t.pedestrians, (self.ego.x, self.ego.y), t.jaywalk_rate, t.npc_speed)
        self.lighting = self._draw_lighting(look_rng)
        self.frame, self.time = 0, 0.0
        self.monitor = EventMonitor(self.town, scene, self.route, self.config, self.params.extent)
        return self._observe(render=True, events=self.monitor.initial())

    def _draw_lighting(self, rng: np.random.Generator) -> Lighting:
        a = self.config.appearance
        elevation = math.radians(rng.uniform(*a.sun_elevation))
        azimuth = rng.uniform(0, 2 * math.pi)
        sun = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
        sky = tuple(int(v) for v in np.clip(np.array((135, 180, 230)) * rng.uniform(0.8, 1.1), 0, 255))
        return Lighting(sun_direction=sun, brightness=float(rng.uniform(*a.brightness)), sky_rgb=sky)

    def step(self, control: VehicleControl, render: bool | str = True) -> Observation:
        if self.town is None:
            raise RuntimeError("call reset() before step()")
        if render not in (True, False, RGB_ONLY):
            raise ValueError(f"render must be True, False or {RGB_ONLY!r}, got {render!r}")
        start = time.perf_counter()
        self.timings_ms["render"] = 0.0
        self.ego = step_bicycle(self.ego, control, self.dt, self.params)
        self._move_traffic()
        self.frame += 1
        self.time += self.dt
        events = self.monitor.update(self.ego, self.traffic, self.time, self.dt)
        obs = self._observe(render=render, events=events)
        self.timings_ms["step"] = 1000 * (time.perf_counter() - start) - self.timings_ms["render"]
        return obs

    def _move_traffic(self) -> None:
        """One step of the NPC vehicles (yielding to the ego and to walkers) and of the walkers (standing for vehicles just ahead of them)."""
        walkers = self.traffic.walkers
        ego, predicted = self._ego_obstacles()
        others = np.array(ego + predicted + [(w.x, w.y, 0.5) for w in walkers])
        others_speed = np.array([self.ego.speed] * (len(ego) + len(predicted)) + [0.0] * len(walkers))
        unseen = np.zeros((len(self.traffic.npcs), len(others)), dtype=bool)
        unseen[:, len(ego) : len(ego) + len(predicted)] = self._ahead_of_ego()[:, None]
        self.traffic.step_vehicles(self.dt, self.time, others, others_speed, unseen)
        e, (half_length, half_width, _) = self.ego, self.params.extent
        vehicles = [(e.x, e.y, e.yaw, half_length, half_width)] + [(n.x, n.y, n.yaw, n.extent[0], n.extent[1]) for n in self.traffic.npcs]
        self.traffic.step_walkers(self.dt, self.time, np.array(vehicles))

    def _ego_obstacles(self) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
        """The ego as NPC vehicles see it (x, y, radius): circles along its length, and circles on its route
        where it will be over the next EGO_PREDICTION_S seconds at its speed (as if it signalled), so that a
        vehicle merging or turning across its path yields to where it is going, not only to where it is."""
        e, half_length, radius = self.ego, self.params.extent[0], self.params.extent[1] + 0.3
        c, s = math.cos(e.yaw), math.sin(e.yaw)
        body = [(e.x + a * c, e.y + a * s, radius) for a in (-0.6 * half_length, 0.0, 0.6 * half_length)]
        ahead = [half_length + e.speed * t for t in EGO_PREDICTION_S if e.speed * t > 0.5]
        last = len(self.route.points) - 1
        points = self.route.points[[min(self.monitor.progress_index + round(a), last) for a in ahead]]  # 1 m apart
        return body, [(float(x), float(y), radius) for x, y in points]

    def _ahead_of_ego(self) -> np.ndarray:
        """(N,) whether each NPC vehicle drives wholly ahead of the ego (its rear past the ego's front): those
        do not yield to the ego's prediction; one beside or behind the ego does."""
        if not self.traffic.npcs:
            return np.zeros(0, dtype=bool)
        npcs = self.traffic.npcs
        xy = np.array([(n.x, n.y) for n in npcs]) - (self.ego.x, self.ego.y)
        along = xy @ np.array([math.cos(self.ego.yaw), math.sin(self.ego.yaw)])
        return along > self.params.extent[0] + np.array([n.extent[0] for n in npcs])

    def top_down_map(self, trail: np.ndarray, marks: Sequence[tuple[str, float, float]] = (), size: int = 900) -> np.ndarray:
        """The town map, annotated by :func:`drivestack.sim.visualize.annotate_map`."""
        scene = self._scene
        k = size / max(scene.rgb.shape[:2])
        image = cv2.resize(scene.rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        to_px = lambda p: ((np.asarray(p) - scene.origin) / scene.res * k).astype(np.int32)  # noqa: E731
        return annotate_map(image, to_px, self.route.points, trail, marks)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # -- observation ------------------------------------------------------------------------------
    def light_states(self) -> list[TrafficLightState]:
        return [self.town.light_state(l.junction, l.arm, self.time) for l in self.town.lights]

    def _observe(self, render: bool | str, events) -> Observation:
        ego = self.ego
        pose = Pose(ego.x, ego.y, 0.0, 0.0, 0.0, math.degrees(ego.yaw))
        idx = self.monitor.progress_index
        local = to_local(self._route_ahead(idx), ego.x, ego.y, ego.yaw)
        if len(local) < ROUTE_POINTS:
            local = np.vstack([local, np.repeat(local[-1:], ROUTE_POINTS - len(local), axis=0)])
        command = RoadOption(int(self.route.commands[min(idx + 1, len(self.route.commands) - 1)]))
        return Observation(
            frame=self.frame,
            time=self.time,
            cameras=self._render(pose, self.light_states(), truth=render is True) if render else {},
            ego=EgoState(pose=pose, speed=ego.speed, acceleration=ego.acceleration, extent=self.params.extent),
            route=local.astype(np.float32),
            command=command,
            target_point=target_point(self.route.points, self._route_s, self.route_plan, idx, ego.x, ego.y, pose.yaw),
            traffic_light=self._light_ahead(idx),
            events=events,
            route_progress=float(idx),
            route_length=self.route.length,
            actors=self._actors(),
            speed_limit=self.config.speed_limit,
        )

    def _route_ahead(self, idx: int) -> np.ndarray:
        """The first ROUTE_POINTS points 1 m apart along the route from point ``idx`` (world frame). A prefix of
        the route gives the same points as all of it once it yields more than that many, so only a prefix is
        resampled (points are about 1 m apart; a shorter prefix falls back to the whole rest)."""
        ahead = self.route.points[idx:]
        if len(ahead) < 2:
            ahead = self.route.points[-2:]
        points = resample(ahead[: 2 * ROUTE_POINTS], 1.0)
        if len(points) <= ROUTE_POINTS + 1 and len(ahead) > 2 * ROUTE_POINTS:
            points = resample(ahead, 1.0)
        return points[:ROUTE_POINTS]

    def _light_ahead(self, idx: int) -> TrafficLightInfo:
        for stop_idx, light_index in self.route.stops:
            if stop_idx >= idx - 1 and stop_idx - idx <= LIGHT_RANGE_M:
                light = self.town.lights[light_index]
                state = self.town.light_state(light.junction, light.arm, self.time)
                return TrafficLightInfo(state=state, distance=float(stop_idx - idx), actor_id=light.actor_id)
        return TrafficLightInfo()

    def _actors(self) -> list[ActorState]:
        out = []
        for npc in self.traffic.npcs:
            if math.hypot(npc.x - self.ego.x, npc.y - self.ego.y) < ACTOR_RADIUS_M:
                v = (npc.speed * math.cos(npc.yaw), npc.speed * math.sin(npc.yaw))
                out.append(ActorState(npc.id, ActorKind.VEHICLE, Pose(npc.x, npc.y, npc.extent[2], yaw=math.degrees(npc.yaw)), npc.extent, v))
        for w in self.traffic.walkers:
            if math.hypot(w.x - self.ego.x, w.y - self.ego.y) < ACTOR_RADIUS_M:
                speed = 0.0 if w.waiting else w.speed
                v = (speed * math.cos(w.yaw), speed * math.sin(w.yaw))
                out.append(ActorState(w.id, ActorKind.PEDESTRIAN, Pose(w.x, w.y, w.extent[2], yaw=math.degrees(w.yaw)), w.extent, v))
        return out

    def dynamic_boxes(self) -> BoxInstances:
        """Boxes of NPC vehicles (body + cabin) and walkers (body + head)."""
        rows = []
        for n in self.traffic.npcs:
            hl, hw, hh = n.extent
            body_h = hh * 0.55
            yaw = math.degrees(n.yaw)
            rows.append((n.x, n.y, body_h + 0.15, hl, hw, body_h, yaw, n.color, n.tag, n.id, 0.0, 0))
            cabin = 0.55 if n.tag == Tag.CAR else 0.9
            cx, cy = n.x - math.cos(n.yaw) * hl * 0.1, n.y - math.sin(n.yaw) * hl * 0.1
            rows.append((cx, cy, 2 * body_h + 0.15 + (hh * 2 - 2 * body_h - 0.15) / 2, hl * cabin, hw * 0.9,
                         (hh * 2 - 2 * body_h - 0.15) / 2, yaw, tuple(int(c * 0.7) for c in n.color), n.tag, n.id, 0.0, 0))
        for w in self.traffic.walkers:
            yaw = math.degrees(w.yaw)
            rows.append((w.x, w.y, 0.75, 0.18, 0.25, 0.75, yaw, w.color, Tag.PEDESTRIANS, w.id, 0.0, 0))
            rows.append((w.x, w.y, 1.65, 0.12, 0.12, 0.13, yaw, (200, 160, 130), Tag.PEDESTRIANS, w.id, 0.0, 0))
        return BoxInstances.from_rows(rows)

    def _facing_states(self, camera_to_world: np.ndarray, states: list[TrafficLightState]) -> dict[int, TrafficLightState]:
        """States of the lights whose lamps face the camera (within 60 degrees, as visors allow): seen from
        behind or the side a head shows no state, so its box carries none."""
        to_camera = camera_to_world[:2, 3] - self._scene.light_xy
        facing = (to_camera * self._scene.light_facing).sum(axis=1) > LAMP_VIEW_COS * np.hypot(*to_camera.T)
        return {light.actor_id: state for light, state, seen in zip(self.town.lights, states, facing) if seen}

    def _render(self, pose: Pose, states: list[TrafficLightState], truth: bool) -> dict[str, CameraFrame]:
        """Every camera's images, with the truth (semantic, depth, instance, 2D boxes) or RGB alone."""
        start = time.perf_counter()
        scene = self._scene
        static = scene.boxes
        static.color[scene.lamp_rows.reshape(-1)] = scene.lamp_colors(states).reshape(-1, 3)
        boxes = BoxInstances.concat([static, self.dynamic_boxes()])
        ego_m = pose.matrix()
        mounts = [ego_m @ Pose(c.x, c.y, c.z, c.roll, c.pitch, c.yaw).matrix() for c in self.config.cameras]
        views = self._renderer.render(mounts, boxes, self.lighting, truth)
        frames = {}
        for cam, m, view in zip(self.config.cameras, mounts, views):
            K = intrinsics(cam.width, cam.height, cam.fov)
            if not truth:
                frames[cam.name] = CameraFrame(name=cam.name, rgb=view.rgb.copy(), semantic=None, depth=None, instance=None,
                                               K=K, camera_to_world=m, boxes=[])  # fmt: skip
                continue
            instance = view.instance.copy()
            boxes2d = visible_boxes(instance, boxes, m, K, self.config.min_box_pixels, self._facing_states(m, states))
            frames[cam.name] = CameraFrame(name=cam.name, rgb=view.rgb.copy(), semantic=view.semantic.copy(),
                                           depth=view.depth.copy(), instance=instance, K=K, camera_to_world=m, boxes=boxes2d)
        self.timings_ms["render"] = 1000 * (time.perf_counter() - start)
        return frames
