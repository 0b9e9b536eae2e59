"""Policy training on the shared trainer (ground-truth then perception inputs) and the learned agent."""

from dataclasses import replace

import pytest
import torch
from drivestack.planning.agents.learned import ModelMismatchError, PolicyAgent, TorchDriver, load_driving_model
from drivestack.sim.interface import RouteSpec

from tests.perception_helpers import HEIGHT, WIDTH, trained_driving_runs


@pytest.fixture(scope="module")
def runs():
    return trained_driving_runs()


def test_both_stages_write_checkpoints_that_rebuild_the_driving_model(runs):
    for stage in ("gt", "pred"):
        model, meta = load_driving_model(runs / stage / "last.pt")
        out = model(torch.zeros(1, 3, HEIGHT, WIDTH, dtype=torch.uint8), torch.tensor([3.0]), torch.tensor([4]), torch.tensor([[20.0, 0.0]]))
        assert out["path"].shape == (1, 5, 2) and out["seg"].shape[-2:] == (HEIGHT, WIDTH)
        assert meta["policy_inputs"] == ("ground_truth" if stage == "gt" else "perception")


def test_perception_stays_frozen_while_the_policy_trains(runs):
    gt, _ = load_driving_model(runs / "gt" / "last.pt")
    pred, _ = load_driving_model(runs / "pred" / "last.pt")
    for (name, a), (_, b) in zip(gt.perception.state_dict().items(), pred.perception.state_dict().items()):
        assert torch.equal(a, b), name


def test_agent_drives_and_refuses_a_mismatched_camera(runs):
    from drivestack.sim.embedded.backend import EmbeddedSimulator
    from drivestack.sim.settings import CameraConfig

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
    from drivestack.common.checkpoint import load_checkpoint

    driver = TorchDriver(runs / "gt" / "last.pt", perception=runs / "perception.pt")
    expected = load_checkpoint(runs / "perception.pt")["state_dict"]
    for name, value in driver.model.perception.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_probe_counts_standing_frames_by_light_and_reports_brake_rates(runs, tmp_path):
    """A copy of the recorded dataset whose first episode stands at a green light (2 frames, expert goes) and a
    red one (1 frame, expert waits); no other frame has a light ahead."""
    import json
    import shutil

    from drivestack.planning.evaluation.probe import ProbeConfig, probe
    from drivestack.sim.record.dataset_io import list_episodes, read_measurements

    from tests.perception_helpers import recorded_dataset

    data = tmp_path / "data"
    shutil.copytree(recorded_dataset(), data)
    for n, episode in enumerate(list_episodes(data)):
        records = read_measurements(episode / "measurements.jsonl")
        for i, record in enumerate(records):
            state, target = {0: (2, 5.0), 1: (2, 5.0), 2: (0, 0.0)}.get(i if n == 0 else -1, (None, None))
            record["traffic_light"] = {"state": 2 if state is None else state, "distance": 5.0 if state is not None else None, "actor_id": 1}
            record["speed"], record["expert_target_speed"] = (0.0, target) if state is not None else (record["speed"], 4.0)
        (episode / "measurements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = ProbeConfig(model=str(runs / "pred" / "last.pt"), data=str(data), frames=1, out=str(tmp_path / "probe.json"))
    assert probe(config) == 0
    results = json.loads((tmp_path / "probe.json").read_text())["results"]
    assert {k: (v["frames_found"], v["probed"]) for k, v in results.items()} == {"green_go": (2, 1), "red_wait": (1, 1)}
    assert all(0.0 <= v["brake_rate"] <= 1.0 for v in results.values())
