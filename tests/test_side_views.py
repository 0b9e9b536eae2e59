"""Side views: frames of a side camera become the view of a displaced car, labelled with the way back."""

from __future__ import annotations

import atexit
import functools
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from drivestack.common.checkpoint import save_checkpoint
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.dataset import DataConfig, DrivingDataset, ViewShift, displace_policy
from drivestack.planning.agents.expert import ExpertAgent
from drivestack.planning.policy.driving_model import DrivingModel, DrivingModelConfig
from drivestack.planning.policy.input_cache import build_input_cache
from drivestack.planning.policy.model import DrivingPolicy, PolicyConfig
from drivestack.planning.policy.train import FrameUnion, PolicyBatches, PolicyTrainConfig, frame_counts, training_set
from drivestack.sim.geometry import to_local
from drivestack.sim.record.dataset_io import DatasetError
from drivestack.sim.record.recorder import CollectConfig, collect
from drivestack.sim.settings import CameraConfig, SimConfig, TownConfig, TrafficConfig

from tests.perception_helpers import tiny_model_config

FRONT = {"name": "front", "width": 128, "height": 64, "fov": 90.0, "x": 1.3, "y": 0.0, "z": 1.6, "roll": 0.0, "pitch": 0.0, "yaw": 0.0}


@functools.lru_cache(maxsize=1)
def two_camera_dataset() -> Path:
    """One small town, one route, 6 saved frames from the front camera and one 3 m to its left."""
    out = Path(tempfile.mkdtemp(prefix="side_views_"))
    atexit.register(shutil.rmtree, out, True)
    cameras = [CameraConfig("front", 128, 64), CameraConfig("left_shift", 128, 64, y=-3.0)]
    sim = SimConfig(cameras=cameras, town=TownConfig(grid=3), traffic=TrafficConfig(vehicles=4, pedestrians=4), route_length=150.0)
    config = CollectConfig(out=str(out), town_seeds=[0], routes_per_town=1, max_frames=30, save_every=5, workers=1,
                           progress=False, sim=sim)  # fmt: skip
    assert not collect(config, ExpertAgent).incomplete
    return out


def test_view_shift_puts_the_reference_camera_where_the_side_camera_is():
    assert ViewShift.between({**FRONT, "name": "left", "y": -3.0}, FRONT) == ViewShift(0.0, -3.0, 0.0)
    turned = ViewShift.between({**FRONT, "name": "right", "yaw": 90.0}, FRONT)  # front camera turned to look right
    assert (turned.x, turned.y, turned.yaw) == pytest.approx((1.3, -1.3, 90.0))  # its car stands 1.3 m back along its own axis
    both = ViewShift.between({**FRONT, "name": "left_turned", "y": -1.5, "yaw": -20.0}, FRONT)  # shifted and turned
    a = math.radians(-20.0)
    assert (both.x, both.y) == pytest.approx((1.3 - 1.3 * math.cos(a), -1.5 - 1.3 * math.sin(a)))  # (0.078, -1.055)


def test_a_shifted_and_turned_view_sees_the_route_where_its_camera_does():
    """A route point seen from the side camera's mount equals the point seen from the displaced car's front camera."""
    camera = {**FRONT, "name": "left_turned", "y": -1.5, "yaw": -20.0}
    shift = ViewShift.between(camera, FRONT)
    point = np.array([[12.0, 2.0]], np.float32)  # ego frame
    seen_by_camera = to_local(point, camera["x"], camera["y"], math.radians(camera["yaw"]))
    moved = displace_policy({"waypoints": point, "target_point": point[0], "displaced": np.bool_(False)}, shift)
    seen_by_front_of_displaced_car = to_local(moved["waypoints"], FRONT["x"], FRONT["y"], 0.0)
    np.testing.assert_allclose(seen_by_front_of_displaced_car, seen_by_camera, atol=1e-5)


def test_displaced_targets_are_the_route_seen_from_the_displaced_pose():
    route = np.stack([np.arange(20.0), np.zeros(20)], axis=1).astype(np.float32)  # straight ahead, 1 m apart
    targets = {"waypoints": route, "target_point": np.array([20.0, 0.0], np.float32), "displaced": np.bool_(False)}
    left = displace_policy(targets, ViewShift(0.0, -3.0, 0.0))
    assert left["displaced"] and not targets["displaced"]
    np.testing.assert_allclose(left["waypoints"], route + [0.0, 3.0], atol=1e-6)  # the route lies 3 m to the right
    np.testing.assert_allclose(left["target_point"], [20.0, 3.0], atol=1e-6)
    turned = displace_policy(targets, ViewShift(0.0, 0.0, -20.0))  # heading 20 degrees left of the route
    angle = np.degrees(np.arctan2(turned["waypoints"][1:, 1], turned["waypoints"][1:, 0]))
    np.testing.assert_allclose(angle, 20.0, atol=1e-4)  # the route is 20 degrees to the right


def test_side_camera_frames_carry_the_displaced_route_and_their_own_image():
    root = two_camera_dataset()
    front = DrivingDataset(root, [0], ClassMap(), "front")
    left = DrivingDataset(root, [0], ClassMap(), "left_shift", reference_camera="front")
    assert left.shift == ViewShift(0.0, -3.0, 0.0) and front.shift is None
    for i in range(len(front)):
        a, b = front[i]["policy"], left[i]["policy"]
        assert not a["displaced"] and b["displaced"]
        np.testing.assert_allclose(b["waypoints"].numpy(), a["waypoints"].numpy() + [0.0, 3.0], atol=1e-5)
        assert float(b["speed"]) == float(a["speed"]) and int(b["command"]) == int(a["command"])
    assert not torch.equal(front[3]["image"], left[3]["image"])


def test_a_side_camera_that_does_not_see_like_its_reference_is_refused():
    with pytest.raises(ValueError, match=r"camera 'high' cannot stand in for 'front': differs in \['z'\]"):
        ViewShift.between({**FRONT, "name": "high", "z": 2.5}, FRONT)
    with pytest.raises(ValueError, match="'front' has yaw 10.0"):
        ViewShift.between(FRONT, {**FRONT, "yaw": 10.0})
    with pytest.raises(DatasetError, match="no camera 'rear'"):
        DrivingDataset(two_camera_dataset(), [0], ClassMap(), "rear", reference_camera="front")
    with pytest.raises(DatasetError, match="no mount recorded for camera 'rear'"):
        DrivingDataset(two_camera_dataset(), [0], ClassMap(), "left_shift", reference_camera="rear")


def test_displaced_frames_teach_the_path_but_not_speed_or_brake():
    """A displaced frame with an absurd speed label changes the path term only."""
    torch.manual_seed(0)
    policy = DrivingPolicy(PolicyConfig(input_size=(16, 32)))
    out = policy(torch.rand(2, 10, 16, 32), torch.rand(2, 5, 16, 32), torch.full((2,), 5.0), torch.full((2,), 4),
                 torch.tensor([[20.0, 0.0]] * 2))  # fmt: skip
    path = torch.zeros(2, 5, 2)
    path[1, :, 1] = 3.0
    targets = {"path": path, "path_valid": torch.ones(2, 5, dtype=torch.bool), "target_speed": torch.tensor([5.0, 0.0])}
    with torch.no_grad():
        alone = policy.compute_loss({k: v[:1] for k, v in out.items()}, {k: v[:1] for k, v in targets.items()})
        both = policy.compute_loss(out, {**targets, "speed_valid": torch.tensor([True, False])})
    assert float(both["speed"]) == pytest.approx(float(alone["speed"])) and float(both["brake"]) == pytest.approx(float(alone["brake"]))
    assert both["path"] > alone["path"]  # the displaced frame's path label still counts


def test_side_cameras_join_training_without_their_speed_labels():
    root = two_camera_dataset()
    config = PolicyTrainConfig(data=DataConfig(root=str(root), train_towns=[0], val_towns=[], test_towns=[], cache=False),
                               side_cameras=["left_shift"])  # fmt: skip
    union = training_set(config, None)
    assert isinstance(union, FrameUnion) and [p.camera for p in union.datasets] == ["front", "left_shift"]
    front = union.datasets[0]
    assert frame_counts(union, config.model) == frame_counts(front, config.model)  # speed terms: recorded pose only
    batches = PolicyBatches(union, config, 0.54)
    n = len(front)
    _, labels = batches([union[i] for i in (0, n)])
    assert labels["speed_valid"].tolist() == [True, False]
    assert labels["path"][1, 0, 1] - labels["path"][0, 0, 1] == pytest.approx(3.0, abs=0.05)
    with pytest.raises(DatasetError, match="side camera 'rear' is in none of the datasets"):
        training_set(PolicyTrainConfig(data=config.data, side_cameras=["rear"]), None)
    for wrong in (["front"], ["left_shift", "left_shift"]):
        with pytest.raises(ValueError, match="side_cameras must be distinct and exclude data.camera 'front'"):
            PolicyTrainConfig(data=config.data, side_cameras=wrong)


def test_cached_side_views_stay_displaced(tmp_path):
    """Policy training reads cached perception inputs: the cache keeps the side camera's shift and labels."""
    root = two_camera_dataset()
    model = DrivingModel(DrivingModelConfig(perception=tiny_model_config(), policy=PolicyConfig(input_size=(16, 32))))
    save_checkpoint(tmp_path / "p.pt", {"state_dict": model.perception.state_dict()})
    left = DrivingDataset(root, [0], ClassMap(), "left_shift", reference_camera="front")
    cache = build_input_cache(model.perceive, left, tmp_path / "p.pt", None, 1, tmp_path / "cache", batch_size=4, workers=0)
    assert cache.shift == left.shift
    assert cache[2]["policy"]["displaced"] and torch.equal(cache[2]["policy"]["waypoints"], left[2]["policy"]["waypoints"])
    front = DrivingDataset(root, [0], ClassMap(), "front")
    assert frame_counts(FrameUnion([front, cache]), PolicyConfig()) == frame_counts(front, PolicyConfig())
