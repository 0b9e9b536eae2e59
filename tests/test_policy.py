"""The driving policy: shapes, command branches, labels, loss, and command conditioning after training."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from drivestack.planning.policy.labels import path_points
from drivestack.planning.policy.model import (
    COMMANDS,
    DrivingPolicy,
    PolicyConfig,
    channel_softmax,
    command_index,
    ground_truth_to_policy_inputs,
    is_recovery,
    is_slowing,
    is_start,
)
from drivestack.planning.policy.train import MAX_START_WEIGHT, PolicyBatches, frame_counts, policy_metrics, resolve_start_weight
from drivestack.sim.conventions import RoadOption


def test_command_index_covers_every_roadoption():
    values = torch.tensor([int(c) for c in COMMANDS] + [int(RoadOption.VOID)])
    assert command_index(values).tolist() == [0, 1, 2, 3, 4, 5, 3]


def test_channel_softmax_is_torch_softmax_over_channels_even_for_huge_logits():
    logits = torch.randn(2, 10, 8, 16) * 30
    logits[0, 3, 2, 5] = 1e4  # exp would overflow without the shift by the maximum
    torch.testing.assert_close(channel_softmax(logits), torch.softmax(logits, dim=1), rtol=1e-6, atol=1e-7)


def test_path_points_follow_the_route_at_fixed_arc_lengths():
    route = np.stack([np.arange(20.0), np.zeros(20)], 1)
    pts, ok = path_points(route, np.ones(20, bool), 5, 2.0)
    np.testing.assert_allclose(pts, [[2, 0], [4, 0], [6, 0], [8, 0], [10, 0]], atol=1e-6)
    assert ok.all()
    valid = np.arange(20) < 7  # route ends 6 m ahead
    _, ok = path_points(route, valid, 5, 2.0)
    assert ok.tolist() == [True, True, True, False, False]


def test_ground_truth_inputs_are_one_hot_pooled():
    mask = torch.zeros(1, 8, 8, dtype=torch.uint8)
    mask[:, :4] = 2
    mask[:, 4:, :4] = 255  # ignored pixels belong to no class
    seg, det = ground_truth_to_policy_inputs(mask, torch.zeros(1, 5, 2, 2), 3)
    assert seg.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(seg[0, :, 0, 0], [0, 0, 1])
    np.testing.assert_allclose(seg[0, :, 1, 0], [0, 0, 0])
    np.testing.assert_allclose(seg[0, :, 1, 1], [1, 0, 0])


def ahead(n: int, lateral: float = 0.0) -> torch.Tensor:
    """Target points 30 m ahead (``lateral`` metres to the right)."""
    return torch.tensor([[30.0, lateral]]).expand(n, 2)


def test_loss_at_init_is_finite_and_backpropagates():
    policy = DrivingPolicy(PolicyConfig(input_size=(16, 32)))
    out = policy(torch.rand(4, 10, 16, 32), torch.rand(4, 5, 16, 32), torch.rand(4) * 8, torch.tensor([1, 2, 3, 4]), torch.rand(4, 2) * 30)
    assert out["path"].shape == (4, 5, 2) and out["target_speed"].shape == (4,) and out["brake"].shape == (4,)
    targets = {"path": torch.zeros(4, 5, 2), "path_valid": torch.ones(4, 5, dtype=torch.bool), "target_speed": torch.full((4,), 5.0)}
    losses = policy.compute_loss(out, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert policy.branches.weight.grad.abs().sum() > 0


def test_left_and_right_give_different_paths_after_training_on_a_toy_set():
    """Same scene, two commands: LEFT paths bend left (y < 0), RIGHT bend right; the policy must learn both."""
    torch.manual_seed(0)
    config = PolicyConfig(input_size=(16, 32))
    policy = DrivingPolicy(config)
    seg, det = torch.rand(8, 10, 16, 32), torch.rand(8, 5, 16, 32)
    seg = torch.cat([seg, seg]); det = torch.cat([det, det])  # noqa: E702
    command = torch.tensor([int(RoadOption.LEFT)] * 8 + [int(RoadOption.RIGHT)] * 8)
    s = torch.arange(1, 6).float() * 2
    left = torch.stack([s, -0.05 * s**2], 1)
    right = torch.stack([s, 0.05 * s**2], 1)
    targets = {"path": torch.stack([left] * 8 + [right] * 8), "path_valid": torch.ones(16, 5, dtype=torch.bool),
               "target_speed": torch.full((16,), 4.0)}
    optim = torch.optim.Adam(policy.parameters(), lr=3e-3)
    speed = torch.full((16,), 4.0)
    for _ in range(150):
        loss = sum(policy.compute_loss(policy(seg, det, speed, command, ahead(len(speed))), targets).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    policy.eval()
    with torch.no_grad():
        out = policy(seg, det, speed, command, ahead(len(speed)))["path"]
    assert (out[:8, -1, 1] < -2.0).all() and (out[8:, -1, 1] > 2.0).all()


def test_the_target_point_steers_the_path_after_training_on_a_toy_set():
    """Same scene and command (LANEFOLLOW), target point 3.5 m left or right: the paths must follow it."""
    torch.manual_seed(0)
    policy = DrivingPolicy(PolicyConfig(input_size=(16, 32)))
    seg, det = torch.rand(1, 10, 16, 32).expand(16, -1, -1, -1), torch.rand(1, 5, 16, 32).expand(16, -1, -1, -1)
    command, speed = torch.full((16,), int(RoadOption.LANEFOLLOW)), torch.full((16,), 5.0)
    target = torch.cat([ahead(8, -3.5), ahead(8, 3.5)])
    s = torch.arange(1, 6).float() * 2
    paths = torch.stack([torch.stack([s, side * 0.3 * s], 1) for side in [-1] * 8 + [1] * 8])
    targets = {"path": paths, "path_valid": torch.ones(16, 5, dtype=torch.bool), "target_speed": torch.full((16,), 4.0)}
    optim = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(150):
        loss = sum(policy.compute_loss(policy(seg, det, speed, command, target), targets).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        out = policy.eval()(seg, det, speed, command, target)["path"]
    assert (out[:8, -1, 1] < -2.0).all() and (out[8:, -1, 1] > 2.0).all()


def test_without_speed_input_the_outputs_do_not_depend_on_speed():
    torch.manual_seed(0)
    blind = DrivingPolicy(PolicyConfig(input_size=(16, 32), speed_input=False)).eval()
    seeing = DrivingPolicy(PolicyConfig(input_size=(16, 32))).eval()
    seg, det = torch.rand(2, 10, 16, 32), torch.rand(2, 5, 16, 32)
    command = torch.tensor([int(RoadOption.LANEFOLLOW)] * 2)
    with torch.no_grad():
        for model, depends in ((blind, False), (seeing, True)):
            still = model(seg, det, torch.zeros(2), command, ahead(2))
            moving = model(seg, det, torch.full((2,), 8.0), command, ahead(2))
            assert torch.allclose(still["target_speed"], moving["target_speed"]) != depends
            assert torch.allclose(still["path"], moving["path"]) != depends


def _brake_probability_after_fit(start_weight: float) -> float:
    """One scene seen 20 times standing still: the expert waits in 19 frames and starts in 1."""
    torch.manual_seed(0)
    config = PolicyConfig(input_size=(16, 32))
    policy = DrivingPolicy(config)
    seg, det = torch.rand(1, 10, 16, 32).expand(20, -1, -1, -1), torch.rand(1, 5, 16, 32).expand(20, -1, -1, -1)
    speed, command = torch.zeros(20), torch.full((20,), int(RoadOption.LANEFOLLOW))
    target_speed = torch.tensor([4.0] + [0.0] * 19)
    weight = torch.where(is_start(speed, target_speed, config), start_weight, 1.0)
    targets = {"path": torch.zeros(20, 5, 2), "path_valid": torch.ones(20, 5, dtype=torch.bool),
               "target_speed": target_speed, "weight": weight}  # fmt: skip
    optim = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(150):
        loss = sum(policy.compute_loss(policy(seg, det, speed, command, ahead(len(speed))), targets).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        return float(torch.sigmoid(policy.eval()(seg[:1], det[:1], speed[:1], command[:1], ahead(1))["brake"]))


def test_start_weight_moves_the_brake_probability_of_ambiguous_standing_frames():
    """Unweighted, the fit brakes with the waiting frames' share (19/20); weighted x19 it is undecided (0.5)."""
    assert _brake_probability_after_fit(1.0) > 0.9
    assert abs(_brake_probability_after_fit(19.0) - 0.5) < 0.1


def test_balanced_start_weight_is_waits_over_starts_and_capped():
    def frames(starts: int, waits: int, moving: int) -> SimpleNamespace:
        records = [{"speed": 0.1, "expert_target_speed": 5.0}] * starts + [{"speed": 0.0, "expert_target_speed": 0.0}] * waits
        records += [{"speed": 6.0, "expert_target_speed": 0.0}] * moving  # braking while moving: slowing
        records += [{"speed": 6.0, "expert_target_speed": 5.5}] * 7  # cruising: none of the three
        return SimpleNamespace(frames=[SimpleNamespace(record=r) for r in records], shift=None)

    config = PolicyConfig()
    assert frame_counts(frames(4, 40, 100), config) == (4, 40, 100)
    assert resolve_start_weight(config, *frame_counts(frames(4, 40, 100), config)[:2]) == 10.0
    assert resolve_start_weight(config, *frame_counts(frames(1, 500, 0), config)[:2]) == MAX_START_WEIGHT
    assert resolve_start_weight(config, *frame_counts(frames(50, 10, 0), config)[:2]) == 1.0  # never below 1
    assert resolve_start_weight(PolicyConfig(start_weight=3.0), 4, 40) == 3.0
    with pytest.raises(ValueError, match="start_weight"):
        PolicyConfig(start_weight=-1.0)


def test_slowing_frames_are_moving_frames_the_expert_slows_by_more_than_the_margin():
    config = PolicyConfig(slowing_margin=1.0)
    speed = torch.tensor([6.0, 6.0, 6.0, 0.2, 3.0])
    target = torch.tensor([4.0, 5.5, 0.0, 0.0, 3.0])
    assert is_slowing(speed, target, config).tolist() == [True, False, True, False, False]
    with pytest.raises(ValueError, match="slow_weight"):
        PolicyConfig(slow_weight=0.0)


def test_recovery_frames_are_those_whose_label_path_starts_off_to_the_side():
    config = PolicyConfig(recovery_offset=1.0)
    path = torch.zeros(4, 5, 2)
    path[:, :, 0] = torch.arange(2.0, 12.0, 2.0)
    path[1, :, 1], path[2, :, 1], path[3, :, 1] = 3.0, -1.5, 0.8
    valid = torch.ones(4, 5, dtype=torch.bool)
    assert is_recovery(path, valid, config).tolist() == [False, True, True, False]
    valid[1] = False  # no route left: nothing to recover to
    assert is_recovery(path, valid, config).tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="recovery_weight"):
        PolicyConfig(recovery_weight=0.0)
    with pytest.raises(ValueError, match="recovery_offset"):
        PolicyConfig(recovery_offset=-1.0)


def test_training_labels_weigh_the_path_of_recovery_frames():
    """The collate's labels: a recorded route 3 m to the right gets ``recovery_weight``, one straight ahead 1."""
    route = np.zeros((2, 20, 2), np.float32)
    route[:, :, 0] = np.arange(20.0)
    route[1, :, 1] = 3.0
    frames = [SimpleNamespace(record={"expert_target_speed": 5.0}, episode="e") for _ in range(2)]
    config = SimpleNamespace(model=PolicyConfig(recovery_weight=4.0))
    p = {"waypoints": torch.from_numpy(route), "waypoints_valid": torch.ones(2, 20, dtype=torch.bool), "speed": torch.full((2,), 5.0),
         "displaced": torch.zeros(2, dtype=torch.bool)}
    labels = PolicyBatches(SimpleNamespace(frames=frames), config, 0.54).labels(p, [0, 1])
    assert labels["path_weight"].tolist() == [1.0, 4.0]
    assert labels["path"][1, :, 1].tolist() == [3.0] * 5


def _lateral_after_fit(recovery_weight: float) -> float:
    """One scene seen 10 times: in 9 frames the label path goes straight on, in 1 it leads 3 m to the right."""
    torch.manual_seed(0)
    config = PolicyConfig(input_size=(16, 32), recovery_weight=recovery_weight)
    policy = DrivingPolicy(config)
    seg, det = torch.rand(1, 10, 16, 32).expand(10, -1, -1, -1), torch.rand(1, 5, 16, 32).expand(10, -1, -1, -1)
    speed, command = torch.full((10,), 5.0), torch.full((10,), int(RoadOption.LANEFOLLOW))
    path = torch.zeros(10, 5, 2)
    path[:, :, 0] = torch.arange(2.0, 12.0, 2.0)
    path[0, :, 1] = 3.0
    valid = torch.ones(10, 5, dtype=torch.bool)
    targets = {"path": path, "path_valid": valid, "target_speed": torch.full((10,), 5.0),
               "path_weight": torch.where(is_recovery(path, valid, config), config.recovery_weight, 1.0)}  # fmt: skip
    optim = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(200):
        loss = sum(policy.compute_loss(policy(seg, det, speed, command, ahead(10)), targets).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        return float(policy.eval()(seg[:1], det[:1], speed[:1], command[:1], ahead(1))["path"][0, 0, 1])


def test_recovery_weight_moves_the_path_of_ambiguous_frames_towards_the_way_back():
    """L1 fits the median: unweighted the path stays straight (9 of 10 labels); weighted x20 it leads back."""
    assert abs(_lateral_after_fit(1.0)) < 0.5
    assert _lateral_after_fit(20.0) > 2.5


def test_validation_reports_the_lateral_error_of_recovery_frames_only():
    """Two frames: straight ahead (predicted exactly) and 3 m to the right (predicted 1 m): 2 m on recovery."""
    label = torch.zeros(2, 5, 2)
    label[:, :, 0] = torch.arange(2.0, 12.0, 2.0)
    predicted = label.clone()
    label[1, :, 1], predicted[1, :, 1] = 3.0, 1.0

    def batches(samples: list[int]) -> tuple[dict, dict]:
        inputs = {"speed": torch.full((len(samples),), 5.0), "frames": samples}
        return inputs, {"path": label[samples], "path_valid": torch.ones(len(samples), 5, dtype=torch.bool),
                        "target_speed": torch.full((len(samples),), 5.0)}  # fmt: skip

    def model(inputs: dict) -> dict:
        n = len(inputs["frames"])
        return {"path": predicted[inputs["frames"]], "target_speed": torch.full((n,), 5.0), "brake": torch.full((n,), -5.0)}

    batches.config = SimpleNamespace(model=PolicyConfig())
    assert policy_metrics(model, [0, 1], batches)["recovery_lateral_l1"] == pytest.approx(2.0)
    assert "recovery_lateral_l1" not in policy_metrics(model, [0], batches)
