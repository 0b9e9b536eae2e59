"""Policy training on the shared trainer (ground-truth then perception inputs) and the learned agent."""

from dataclasses import replace

import pytest
import torch

from planning.policy_agent import ModelMismatchError, PolicyAgent, TorchDriver, load_driving_model
from sim.interface import RouteSpec
from tests.perception_helpers import HEIGHT, WIDTH, trained_driving_runs


@pytest.fixture(scope="module")
def runs():
    return trained_driving_runs()


def test_both_stages_write_checkpoints_that_rebuild_the_driving_model(runs):
    for stage in ("gt", "pred"):
        model, meta = load_driving_model(runs / stage / "last.pt")
        out = model(torch.zeros(1, 3, HEIGHT, WIDTH, dtype=torch.uint8), torch.tensor([3.0]), torch.tensor([4]))
        assert out["path"].shape == (1, 5, 2) and out["seg"].shape[-2:] == (HEIGHT, WIDTH)
        assert meta["policy_inputs"] == ("ground_truth" if stage == "gt" else "perception")


def test_perception_stays_frozen_while_the_policy_trains(runs):
    gt, _ = load_driving_model(runs / "gt" / "last.pt")
    pred, _ = load_driving_model(runs / "pred" / "last.pt")
    for (name, a), (_, b) in zip(gt.perception.state_dict().items(), pred.perception.state_dict().items()):
        assert torch.equal(a, b), name


def test_agent_drives_and_refuses_a_mismatched_camera(runs):
    from sim.embedded import EmbeddedSimulator
    from sim.settings import CameraConfig
    from tests.conftest import small_sim_config

    config = replace(small_sim_config(), cameras=[CameraConfig("front", WIDTH, HEIGHT)])
    agent = PolicyAgent(TorchDriver(runs / "pred" / "last.pt"))
    with pytest.raises(ModelMismatchError, match="64x128"):
        agent.setup(small_sim_config())
    agent.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=0, length=100))
        for _ in range(5):
            obs = sim.step(agent(obs))
    assert agent.debug.waypoints.shape == (5, 2) and len(agent.step_ms) == 5
    assert 0.0 <= agent.debug.brake_probability <= 1.0


def test_a_perception_checkpoint_is_not_a_driving_model(runs):
    with pytest.raises(ModelMismatchError, match="not a driving-policy checkpoint"):
        load_driving_model(runs / "perception.pt")


def test_driver_can_swap_in_other_perception_weights(runs):
    from perception.training.checkpoint import load_checkpoint

    driver = TorchDriver(runs / "gt" / "last.pt", perception=runs / "perception.pt")
    expected = load_checkpoint(runs / "perception.pt")["state_dict"]
    for name, value in driver.model.perception.state_dict().items():
        assert torch.equal(value, expected[name]), name
