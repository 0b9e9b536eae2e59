"""The embedded simulator: determinism, pixel agreement of its outputs, projection, events."""

import math

import numpy as np
import pytest
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.sim.agent import render_mode
from drivestack.sim.camera import project
from drivestack.sim.conventions import ActorKind, RoadOption, Tag, TrafficLightState
from drivestack.sim.embedded.backend import EmbeddedSimulator
from drivestack.sim.embedded.traffic import Npc, Walker
from drivestack.sim.geometry import Polyline
from drivestack.sim.interface import RGB_ONLY, RouteSpec, VehicleControl

from tests.conftest import small_sim_config


def drive(sim, expert, obs, steps, render=True):
    for _ in range(steps):
        obs = sim.step(expert.run_step(obs), render=render)
    return obs


def test_same_seed_and_controls_give_identical_frames(sim_config):
    frames = []
    for _ in range(2):
        with EmbeddedSimulator(sim_config) as sim:
            expert = ExpertAgent()
            expert.setup(sim_config)
            obs = drive(sim, expert, sim.reset(seed=5, route=RouteSpec(town=2, length=150)), 40)
            cam = obs.cameras["front"]
            frames.append((cam.rgb.tobytes(), cam.semantic.tobytes(), cam.depth.tobytes(), cam.instance.tobytes(),
                           [b.as_list() + [b.actor_id] for b in cam.boxes], obs.ego.pose))
    assert frames[0] == frames[1]


def test_rgb_only_steps_give_the_same_frames_without_the_truth():
    """render=RGB_ONLY: the RGB images and the episode of full renders, no truth images or boxes; other values are refused."""
    sim_config, runs = small_sim_config(vehicles=20), []
    for render in (True, RGB_ONLY):
        with EmbeddedSimulator(sim_config) as sim:
            expert = ExpertAgent()
            expert.setup(sim_config)
            obs = sim.reset(seed=0, route=RouteSpec(town=0, length=150))
            frames, boxes = [], 0
            for _ in range(30):
                obs = sim.step(expert.run_step(obs), render=render)
                frames.append((obs.cameras["front"].rgb.tobytes(), obs.ego.pose))
                boxes += len(obs.cameras["front"].boxes)
            runs.append((frames, boxes, obs.cameras["front"]))
            with pytest.raises(ValueError, match="render must be"):
                sim.step(VehicleControl(), render="semantic")
    (full, full_boxes, full_cam), (alone, alone_boxes, alone_cam) = runs
    assert full == alone
    assert full_boxes > 0 and alone_boxes == 0 and full_cam.semantic is not None
    assert alone_cam.semantic is None and alone_cam.depth is None and alone_cam.instance is None


def test_each_step_renders_what_the_agent_reads():
    class ReadsLabels(ExpertAgent):
        def sensors(self) -> list[str]:
            return ["front"]

    assert render_mode(ExpertAgent()) is False  # ground truth only: nothing rendered
    assert render_mode(ReadsLabels()) is True  # an agent reads all the images unless it says otherwise


def test_different_seeds_give_different_episodes(embedded):
    a = embedded.reset(seed=1, route=RouteSpec(town=2)).ego.pose
    b = embedded.reset(seed=2, route=RouteSpec(town=2)).ego.pose
    assert a != b


def test_observation_shapes_and_types(embedded, sim_config):
    obs = embedded.reset(seed=0, route=RouteSpec(town=0))
    cam = obs.cameras["front"]
    h, w = sim_config.cameras[0].height, sim_config.cameras[0].width
    assert cam.rgb.shape == (h, w, 3) and cam.rgb.dtype == np.uint8
    assert cam.semantic.shape == (h, w) and cam.semantic.dtype == np.uint8
    assert cam.depth.shape == (h, w) and cam.depth.dtype == np.float32
    assert obs.route.shape == (50, 2)
    assert obs.route[5, 0] > 2.0, "route ahead points forward in the ego frame"
    assert isinstance(obs.command, RoadOption)
    assert embedded.step(VehicleControl(), render=False).cameras == {}


def _frames_with_boxes(sim, config, seeds, steps=60):
    for seed in seeds:
        obs = sim.reset(seed=seed, route=RouteSpec(town=seed % 3, length=150))
        expert = ExpertAgent()
        expert.setup(config)
        for _ in range(steps):
            obs = sim.step(expert.run_step(obs))
            cam = obs.cameras["front"]
            if sum(b.kind != ActorKind.TRAFFIC_LIGHT for b in cam.boxes) >= 1:
                yield obs, cam


def test_boxes_semantic_instance_and_depth_agree():
    config = small_sim_config(vehicles=14, pedestrians=14)
    checked = 0
    with EmbeddedSimulator(config) as sim:
        for obs, cam in _frames_with_boxes(sim, config, seeds=range(6)):
            for box in cam.boxes:
                mask = cam.instance == box.actor_id
                ys, xs = np.nonzero(mask)
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (box.x1, box.y1, box.x2, box.y2)
                assert (cam.semantic[mask] == box.tag).all()
                assert 0.0 < box.visibility <= 1.0
                if box.kind == ActorKind.TRAFFIC_LIGHT:  # a head shows its state only to cameras in front of it
                    light = next(l for l in sim.town.lights if l.actor_id == box.actor_id)
                    to_camera = cam.camera_to_world[:2, 3] - (light.x, light.y)
                    cos_angle = np.dot(to_camera, (np.cos(light.yaw), np.sin(light.yaw))) / np.hypot(*to_camera)
                    assert (box.light_state is not None) == (cos_angle > 0.5)
                    continue
                actor = next((a for a in obs.actors if a.id == box.actor_id), None)
                if actor is None:  # visible but beyond the privileged actor radius
                    continue
                uv, depth = project(np.array([[actor.pose.x, actor.pose.y, actor.extent[2]]]), cam.camera_to_world, cam.K)
                radius = float(np.linalg.norm(actor.extent))
                d = cam.depth[mask]
                assert d.min() >= depth[0] - radius - 0.1 and d.max() <= depth[0] + radius + 0.1
                assert box.x1 - 2 <= uv[0, 0] <= box.x2 + 2 or box.visibility < 0.9
                checked += 1
            if checked >= 10:
                break
    assert checked >= 5, "not enough visible actors to check"


def test_rgb_agrees_with_labels(embedded):
    obs = embedded.reset(seed=3, route=RouteSpec(town=1))
    cam = obs.cameras["front"]
    sky = cam.semantic == Tag.SKY
    assert sky.any() and (cam.depth[sky] == 1000.0).all()
    rgb = cam.rgb.astype(int)
    assert (rgb[sky][:, 2] > rgb[sky][:, 0]).mean() > 0.99, "sky pixels are blue"
    road = cam.semantic == Tag.ROADS
    spread = rgb[road].max(1) - rgb[road].min(1)
    assert np.median(spread) < 20, "road pixels are grey"
    grass = cam.semantic == Tag.TERRAIN
    if grass.any():
        assert (rgb[grass][:, 1] > rgb[grass][:, 2]).mean() > 0.9, "terrain pixels are green"


def test_ground_depth_matches_flat_ground_formula(embedded, sim_config):
    """Road pixels straight below the horizon: depth = h * f / (v + 0.5 - cy) for a level camera."""
    obs = embedded.reset(seed=0, route=RouteSpec(town=0))
    cam = obs.cameras["front"]
    c = sim_config.cameras[0]
    f, cy = cam.K[0, 0], cam.K[1, 2]
    rows = np.arange(int(cy) + 4, c.height)
    col = c.width // 2
    ground = np.isin(cam.semantic[rows, col], [Tag.ROADS, Tag.ROAD_LINES])
    expected = c.z * f / (rows + 0.5 - cy)
    np.testing.assert_allclose(cam.depth[rows, col][ground], expected[ground], rtol=0.01)


def _place_npc_ahead(sim, distance):
    lane = sim.town.nearest_lane(sim.ego.x, sim.ego.y, sim.ego.yaw)
    s, _ = lane.line.project(np.array([sim.ego.x, sim.ego.y]))
    x, y, yaw = lane.line.at(s + distance)
    npc = Npc(id=199, path=[lane.id] + lane.successors[:1], s=s + distance, speed=0.0, extent=(2.2, 1.0, 0.8),
              color=(200, 0, 0), tag=Tag.CAR, x=x, y=y, yaw=yaw)
    sim.traffic.npcs.append(npc)
    return npc


def _ram(sim, obs, steps=200):
    expert = ExpertAgent()
    expert.setup(sim.config)
    for _ in range(steps):
        steer = expert.run_step(obs).steer
        obs = sim.step(VehicleControl(throttle=0.7, steer=steer), render=False)
        if obs.events.collisions:
            return obs
    return obs


def test_collision_with_vehicle_is_reported():
    config = small_sim_config(vehicles=0, pedestrians=0, npc_speed=0.01)
    with EmbeddedSimulator(config) as sim:
        for seed in range(10):
            obs = sim.reset(seed=seed, route=RouteSpec(town=0))
            lane = sim.town.nearest_lane(sim.ego.x, sim.ego.y, sim.ego.yaw)
            if lane.line.length - lane.line.project(np.array([sim.ego.x, sim.ego.y]))[0] > 25:
                break
        npc = _place_npc_ahead(sim, 15.0)
        obs = _ram(sim, obs)
    assert [(c.kind, c.actor_id) for c in obs.events.collisions] == [(ActorKind.VEHICLE, npc.id)]


def test_collision_with_pedestrian_is_reported():
    config = small_sim_config(vehicles=0, pedestrians=0)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(seed=0, route=RouteSpec(town=0))
        x, y = obs.route[12]
        yaw = math.radians(obs.ego.pose.yaw)
        wx = obs.ego.pose.x + x * math.cos(yaw) - y * math.sin(yaw)
        wy = obs.ego.pose.y + x * math.sin(yaw) + y * math.cos(yaw)
        walker = Walker(id=599, leg=Polyline(np.array([[wx, wy], [wx + 1e-3, wy]])), s=0.0, speed=0.0, node=(0, 0),
                        color=(0, 0, 255), x=wx, y=wy, at_junction_next=False)
        sim.traffic.walkers.append(walker)
        obs = _ram(sim, obs)
    assert [(c.kind, c.actor_id) for c in obs.events.collisions] == [(ActorKind.PEDESTRIAN, 599)]


def test_driving_off_into_the_scenery_is_off_road_and_a_static_collision():
    config = small_sim_config(vehicles=0, pedestrians=0)
    off_road, statics = False, []
    with EmbeddedSimulator(config) as sim:
        sim.reset(seed=1, route=RouteSpec(town=1))
        for _ in range(400):
            obs = sim.step(VehicleControl(throttle=0.5, steer=0.2), render=False)
            off_road |= obs.events.off_road
            statics += [c for c in obs.events.collisions if c.kind == ActorKind.STATIC]
            if statics:
                break
    assert off_road and statics


def test_running_a_red_light_is_reported_and_stopping_is_not():
    config = small_sim_config(vehicles=0, pedestrians=0)
    with EmbeddedSimulator(config) as sim:
        for seed in range(20):
            obs = sim.reset(seed=seed, route=RouteSpec(town=0, length=150))
            expert = ExpertAgent()
            expert.setup(config)
            waited = False
            for _ in range(600):
                obs = sim.step(expert.run_step(obs), render=False)
                assert not obs.events.red_light, "the expert stops at red lights"
                light = obs.traffic_light
                if light.state == TrafficLightState.RED and obs.ego.speed < 0.05 and light.distance < 8:
                    waited = True
                    break
            if waited:
                break
        assert waited, "no red light met on 20 routes"
        ran = False
        for _ in range(100):
            obs = sim.step(VehicleControl(throttle=0.6, steer=expert.run_step(obs).steer), render=False)
            ran |= obs.events.red_light
        assert ran


def test_torch_compiler_stack_can_load_after_the_renderer_started():
    """triton's LLVM, loaded after Mesa's llvmpipe, used to segfault the process (the renderer now loads it first)."""
    import subprocess
    import sys

    code = ("from drivestack.sim.embedded.render import Renderer, GroundMap; import numpy as np; from drivestack.sim.settings import CameraConfig;"
            "Renderer([CameraConfig()], GroundMap(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), 0.0, 0.0, 1.0));"
            "import torch._dynamo")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
