"""The driving policy: shapes, command branches, labels, loss, and command conditioning after training."""

import numpy as np
import torch

from planning.labels import path_points
from planning.policy import COMMANDS, DrivingPolicy, PolicyConfig, command_index, ground_truth_to_policy_inputs
from sim.conventions import RoadOption


def test_command_index_covers_every_roadoption():
    values = torch.tensor([int(c) for c in COMMANDS] + [int(RoadOption.VOID)])
    assert command_index(values).tolist() == [0, 1, 2, 3, 4, 5, 3]


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


def test_loss_at_init_is_finite_and_backpropagates():
    policy = DrivingPolicy(PolicyConfig(input_size=(16, 32)))
    out = policy(torch.rand(4, 10, 16, 32), torch.rand(4, 5, 16, 32), torch.rand(4) * 8, torch.tensor([1, 2, 3, 4]))
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
        loss = sum(policy.compute_loss(policy(seg, det, speed, command), targets).values())
        optim.zero_grad()
        loss.backward()
        optim.step()
    policy.eval()
    with torch.no_grad():
        out = policy(seg, det, speed, command)["path"]
    assert (out[:8, -1, 1] < -2.0).all() and (out[8:, -1, 1] > 2.0).all()


def test_without_speed_input_the_outputs_do_not_depend_on_speed():
    torch.manual_seed(0)
    blind = DrivingPolicy(PolicyConfig(input_size=(16, 32), speed_input=False)).eval()
    seeing = DrivingPolicy(PolicyConfig(input_size=(16, 32))).eval()
    seg, det = torch.rand(2, 10, 16, 32), torch.rand(2, 5, 16, 32)
    command = torch.tensor([int(RoadOption.LANEFOLLOW)] * 2)
    with torch.no_grad():
        for model, depends in ((blind, False), (seeing, True)):
            still = model(seg, det, torch.zeros(2), command)
            moving = model(seg, det, torch.full((2,), 8.0), command)
            assert torch.allclose(still["target_speed"], moving["target_speed"]) != depends
            assert torch.allclose(still["path"], moving["path"]) != depends
