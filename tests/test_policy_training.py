"""Policy training on the shared trainer (ground-truth then perception inputs) and the learned agent."""

from dataclasses import replace

import pytest
import torch

from perception.models.multitask import MultiTaskNet
from perception.training.checkpoint import model_spec, save_checkpoint
from planning.policy import PolicyConfig
from planning.policy_agent import ModelMismatchError, PolicyAgent, load_driving_model
from sim.interface import RouteSpec
from tests.perception_helpers import HEIGHT, WIDTH, recorded_dataset, tiny_config, tiny_model_config
from tools.train_policy import PolicyTrainConfig, run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A random perception checkpoint, then one epoch of each policy stage on the tiny recorded dataset."""
    root = recorded_dataset()
    tmp = tmp_path_factory.mktemp("policy")
    perception = MultiTaskNet(tiny_model_config())
    save_checkpoint(tmp / "perception.pt", {"model": model_spec("perception.models.multitask:build_multitask", tiny_model_config()),
                                            "state_dict": perception.state_dict(), "meta": {"image_size": [HEIGHT, WIDTH]}})
    base = tiny_config(root)
    policy = PolicyConfig(input_size=(HEIGHT // 4, WIDTH // 4), channels=[8, 16], hidden=32)
    config = PolicyTrainConfig(perception=str(tmp / "perception.pt"), data=base.data, model=policy,
                               train=replace(base.train, out=str(tmp / "gt"), epochs=1, batch_size=4, warmup_steps=1,
                                             ema=False, workers=0, channels_last=False))
    gt = replace(config, inputs="ground_truth")
    assert run(gt) == 0
    seen = replace(config, inputs="perception", init=str(tmp / "gt" / "last.pt"),
                   train=replace(config.train, out=str(tmp / "pred")))
    assert run(seen) == 0
    return tmp


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
    agent = PolicyAgent(runs / "pred" / "last.pt")
    with pytest.raises(ModelMismatchError, match="64x128"):
        agent.setup(small_sim_config())
    agent.setup(config)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(0, RouteSpec(town=0, length=100))
        for _ in range(5):
            obs = sim.step(agent(obs))
    assert agent.debug.waypoints.shape == (5, 2) and len(agent.step_ms) == 5


def test_a_perception_checkpoint_is_not_a_driving_model(runs):
    with pytest.raises(ModelMismatchError, match="not a driving-policy checkpoint"):
        load_driving_model(runs / "perception.pt")
